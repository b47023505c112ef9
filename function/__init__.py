"""Serverless CIFAR-10 image classification for Knative: one functions-framework target."""
