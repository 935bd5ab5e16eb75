"""History of generated images fed to a discriminator (Shrivastava et al. 2017; CycleGAN uses 50)."""

from __future__ import annotations

import random

import torch


class ImagePool:
    """Returns, per image, either the new image or (with probability 1/2) a stored older one that it replaces.

    Training D on a history of G's outputs rather than only the latest reduces oscillation.
    ``pool_size=0`` disables the pool (the input is returned unchanged). Images are stored detached.
    """

    def __init__(self, pool_size: int = 50, seed: int | None = None):
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}.")
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []
        self._random = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, *spatial) -> (B, C, *spatial), detached."""
        images = images.detach().as_subclass(torch.Tensor)  # plain tensors: checkpoints load with weights_only
        if self.pool_size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self._random.random() < 0.5:
                idx = self._random.randrange(self.pool_size)
                out.append(self.images[idx])
                self.images[idx] = image
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict:
        return {"images": list(self.images), "random_state": self._random.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"])
        self._random.setstate(state["random_state"])
