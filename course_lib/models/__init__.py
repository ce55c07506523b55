"""Models of the course: encoders, decoders, whole models (one file per family).

Introduced in ``lectures/02_encoders.ipynb``.
"""

from .encoders import (  # noqa: F401
    DGCNN,
    DGCNNClassifier,
    EncoderOutput,
    PointClassifier,
    PointNet,
    PointNet2,
    PointNet2Classifier,
    PointNetClassifier,
    ResNetEncoder,
    orthogonality_regularizer,
    receptive_fields,
    rgbd_input,
)
