{{ at_serving_cutoff(ref('int_user_features__as_of')) }}
