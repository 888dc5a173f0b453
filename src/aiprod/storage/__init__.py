"""Artifact storage: a local folder by default, any obstore URL (s3://, gs://, az://)."""
