{{ at_serving_cutoff(ref('int_user_topic_affinity__as_of')) }}
