"""Model zoo: every model is registered under the name YAML files and the CLI use."""

from qdistill.models import (  # noqa: F401  (register the models)
    cifar_resnet,
    cnn,
    densenet,
    mlp,
    mobilenet,
    sr,
    torchvision_zoo,
    user_module,
)
from qdistill.models.checkpoint import load_model, save_model
from qdistill.models.config import ModelConfig
from qdistill.models.registry import MODELS, build_model, model_task

__all__ = ["MODELS", "ModelConfig", "build_model", "load_model", "model_task", "save_model"]
