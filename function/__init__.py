"""Serverless CIFAR-10 image classification for Knative: `python -m function` serves it (see function/server.py)."""
