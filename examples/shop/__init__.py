"""The shop: a FastAPI app of its own, with the job platform mounted (`make example`)."""
