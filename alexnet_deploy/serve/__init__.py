"""Scale-out through Triton Inference Server (never a home-made server): a model repository
generated from built artifacts, and a client that benches a served model."""
