"""The network's answer for a batch, shared by serving and by training's evaluation.

With `flip_average` the batch goes through the network together with its mirror image and the two
softmax outputs are averaged: one forward pass of twice the batch, about one point of validation
accuracy for the shipped weights. Evaluation calls the same function, so the accuracy in the model
card is the accuracy the function serves.
"""

import numpy as np

from function.imaging import normalize


def probabilities(net, images: np.ndarray, ctx=None, flip_average: bool = True) -> np.ndarray:
    """Softmax probabilities (N x classes) of a uint8 NHWC batch, computed on `ctx`."""
    import mxnet as mx

    x = mx.nd.array(normalize(images), ctx=ctx)
    if not flip_average:
        return net(x).softmax(axis=1).asnumpy()
    both = net(mx.nd.concat(x, x.flip(axis=3), dim=0)).softmax(axis=1)
    count = len(images)
    return ((both[:count] + both[count:]) / 2).asnumpy()
