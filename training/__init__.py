"""Reproducible training and evaluation of the shipped cifar_resnet20_v1 weights."""
