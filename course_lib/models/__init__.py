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

# --- 06 surfaces: AtlasNet and 3D-CODED --------------------------------------
# isort: split
from .atlasnet import (  # noqa: F401
    AtlasNet,
    AtlasOutput,
    PatchDecoder,
    atlasnet_loss,
    mesh_quality,
)
from .coded import (  # noqa: F401
    Template,
    TemplateDeformer,
    make_template,
    transfer_labels,
)
from .psg import (  # noqa: F401
    PointSetGen,
    PointSetGenDecoder,
    psg_autoencoder,
    psg_single_view,
)

# --- 03 voxels: VoxNet, voxel encoder/decoder, image -> voxels ---------------
# isort: split
from .voxels import (  # noqa: F401
    ConvGRU3d,
    MultiViewVoxelGRU,
    SingleViewVoxels,
    VoxelAutoEncoder,
    VoxelDecoder,
    VoxelEncoder,
    VoxNet,
    balanced_pos_weight,
    voxel_bce,
    voxel_single_view,
    weighted_optimum,
)

# --- 10 gradient fields: ShapeGF ------------------------------------------------
# isort: split
from .shapegf import (  # noqa: F401
    LatentDiscriminator,
    LatentGenerator,
    ScoreNet,
    ShapeGF,
    analytic_score,
    annealed_langevin,
    dsm_loss,
    sigma_schedule,
    train_latent_gan,
)

# --- 07 implicit fields: OccNet, DeepSDF, IM-NET --------------------------------
# isort: split
from .implicit import (  # noqa: F401
    AutoDecoder,
    CBatchNorm,
    CResnetBlock,
    DeepSDFDecoder,
    IMNetDecoder,
    OccNetDecoder,
    OccupancyNetwork,
    clamped_l1,
    deepsdf_loss,
    field_of,
    imnet_loss,
    interpolate_latents,
    latent_penalty,
    occupancy_loss,
    reconstruct_latent,
)

# --- 08 primitives: cuboids and superquadrics ----------------------------------
# isort: split
from .primitives import (  # noqa: F401
    PrimitiveNet,
    Primitives,
    expected_min_distance,
    expected_min_distance_enumerate,
    superquadric_inside_outside,
)

# --- 04 octrees: OGN decoder --------------------------------------------------
# isort: split
from .ogn import (  # noqa: F401
    PROP_KNOWN,
    PROP_PRED,
    OGNAutoEncoder,
    OGNDecoder,
    OGNOutput,
    SparseConv3d,
    expand_cells,
    ogn_loss,
)
