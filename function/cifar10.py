"""Facts of the data set that training and serving must agree on."""

CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
INPUT_SIZE = 32
MEAN: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
STD: tuple[float, float, float] = (0.2023, 0.1994, 0.2010)
NETWORK = "cifar_resnet20_v1"
