{{ at_serving_cutoff(ref('int_item_features__as_of')) }}
