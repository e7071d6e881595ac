"""The one container image every component runs in; its tag is the package version.

Built from images/Dockerfile by the cluster's CI and pushed as IMAGE. Locally the
SubprocessRunner ignores the image and runs the installed package directly.
"""

from quantrec import __version__

IMAGE_REPOSITORY = "ghcr.io/quantrec/quantrec"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
