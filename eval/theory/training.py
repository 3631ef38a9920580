"""Training the LSA by gradient descent (torch, CPU) on in-context linear regression, one pass, no CoT.

Two parameterisations are registered. ``frozen_w`` is the reference (docs/theory.md, Formulas: optimum): ``W`` fixed at ``W_*`` (c = 1) and only
``V[w,x]`` learned, so the trained model's CoT converges. ``free`` trains every entry of ``V`` and ``W`` from
``W_*``'s initialisation: without CoT in training only the last column of ``W`` gets gradient, so ``W[x,w]`` keeps its
initial value while the scale of the learned product drifts, and CoT then plateaus at ``d (1 + W[y,1])^2``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from catalog.registry import Registry
from eval.theory.lsa import Blocks, lsa_optimal_params


@dataclass(frozen=True)
class TrainConfig:
    n: int = 10  # training prompt length
    prompts: int = 200_000  # fixed training sample of prompts (full-batch descent on its exact loss)
    steps: int = 1500
    lr: float = 0.05
    parameterisation: str = "frozen_w"
    init_scale: float = 0.01  # std of the random V initialisation
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    v: np.ndarray
    w: np.ndarray
    losses: np.ndarray  # training loss per step

    @property
    def d(self) -> int:
        return (self.v.shape[0] - 2) // 2

    @property
    def product(self) -> np.ndarray:
        """``V[w,x] * W[y,1]``: the only combination one-pass training identifies; ``Gamma^-1`` at the optimum."""
        blocks = Blocks(self.d)
        return self.v[blocks.w, blocks.x] * self.w[blocks.y, blocks.one]

    @property
    def cot_plateau(self) -> float:
        """Predicted ``E||w_k - w||^2`` as ``k -> inf``: the fixed point is ``-W[y,1] W[x,w]^-1 w``."""
        blocks = Blocks(self.d)
        fixed = -self.w[blocks.y, blocks.one] * np.linalg.inv(self.w[blocks.x, blocks.w])
        residual = fixed - np.eye(self.d)
        return float(np.sum(residual * residual))


# A parameterisation turns the trainable tensors into the full (V, W) pair.
Parameterisation = Callable[[np.ndarray, float, torch.Generator], tuple[list[torch.Tensor], Callable]]
PARAMETERISATIONS: Registry[Parameterisation] = Registry("parameterisation", ValueError)


def parameterisation(name: str) -> Callable[[Parameterisation], Parameterisation]:
    return PARAMETERISATIONS.register(name)


@parameterisation("frozen_w")
def _frozen_w(lam: np.ndarray, init_scale: float, gen: torch.Generator) -> tuple[list[torch.Tensor], Callable]:
    blocks = Blocks(lam.shape[0])
    _, w_star = lsa_optimal_params(lam, np.inf)
    w_fixed = torch.tensor(w_star, dtype=torch.float64)
    v_wx = (init_scale * torch.randn(blocks.d, blocks.d, generator=gen, dtype=torch.float64)).requires_grad_()

    def build() -> tuple[torch.Tensor, torch.Tensor]:
        v = torch.zeros(blocks.size, blocks.size, dtype=torch.float64)
        v[blocks.w, blocks.x] = v_wx
        return v, w_fixed

    return [v_wx], build


@parameterisation("free")
def _free(lam: np.ndarray, init_scale: float, gen: torch.Generator) -> tuple[list[torch.Tensor], Callable]:
    blocks = Blocks(lam.shape[0])
    _, w_star = lsa_optimal_params(lam, np.inf)
    v = (init_scale * torch.randn(blocks.size, blocks.size, generator=gen, dtype=torch.float64)).requires_grad_()
    w = torch.tensor(w_star, dtype=torch.float64).requires_grad_()
    return [v, w], lambda: (v, w)


def sample_training_embeddings(
    lam: np.ndarray, n: int, prompts: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial embeddings ``E_0`` of ``prompts`` prompts (``x ~ N(0, Lambda)``, ``w ~ N(0, I)``, noiseless ``y``) and
    their weight vectors."""
    blocks = Blocks(lam.shape[0])
    chol = torch.linalg.cholesky(torch.tensor(lam, dtype=torch.float64))
    x = chol @ torch.randn(prompts, blocks.d, n, generator=gen, dtype=torch.float64)
    w = torch.randn(prompts, blocks.d, generator=gen, dtype=torch.float64)
    e = torch.zeros(prompts, blocks.size, n + 1, dtype=torch.float64)
    e[:, blocks.x, :n] = x
    e[:, blocks.y, :n] = torch.einsum("pdn,pd->pn", x, w)
    e[:, blocks.one, n] = 1.0
    return e, w


@dataclass(frozen=True)
class LossStatistics:
    """Sufficient statistics of the one-pass loss over a fixed sample of prompts.

    The query column of ``E_0`` is ``e_last``, so ``f(E_0)[:, -1] = e_last + V C_p W[:, -1]`` with
    ``C_p = E_p E_p^T / n``, and the residual target is ``r_p = (0, 0, w_p, 0)``. The loss is therefore a polynomial
    in ``(V, W[:, -1])`` whose coefficients are sample means: ``T = mean C_p (x) C_p``, ``B = mean C_p (x) r_p`` and
    ``R = mean ||r_p||^2``. Descending on them is descending on the exact empirical loss, at a cost per step that
    does not grow with the number of prompts.
    """

    fourth: torch.Tensor  # T[j, k, a, b] = mean C[j, k] C[a, b]
    cross: torch.Tensor  # B[j, k, i] = mean C[j, k] r[i]
    target_energy: float  # R

    def loss(self, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        omega = w[:, -1]
        gram = torch.einsum("jkab,k,b->ja", self.fourth, omega, omega)
        quadratic = torch.einsum("ij,ja,ia->", v, gram, v)
        linear = torch.einsum("ij,jki,k->", v, self.cross, omega)
        return 0.5 * quadratic - linear + 0.5 * self.target_energy


def loss_statistics(lam: np.ndarray, n: int, prompts: int, gen: torch.Generator, batch: int = 20_000) -> LossStatistics:
    """Accumulate the loss statistics over ``prompts`` sampled prompts, ``batch`` at a time (bounded memory)."""
    blocks = Blocks(lam.shape[0])
    fourth = torch.zeros((blocks.size,) * 4, dtype=torch.float64)
    cross = torch.zeros((blocks.size,) * 3, dtype=torch.float64)
    energy = 0.0
    for start in tqdm(range(0, prompts, batch), desc="sample prompts", disable=None):
        e0, w_true = sample_training_embeddings(lam, n, min(batch, prompts - start), gen)
        moments = e0 @ e0.transpose(1, 2) / n
        residual = torch.zeros(len(w_true), blocks.size, dtype=torch.float64)
        residual[:, blocks.w] = w_true
        fourth += torch.einsum("pjk,pab->jkab", moments, moments)
        cross += torch.einsum("pjk,pi->jki", moments, residual)
        energy += float((residual**2).sum())
    return LossStatistics(fourth=fourth / prompts, cross=cross / prompts, target_energy=energy / prompts)


def train_lsa(lam: np.ndarray, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Full-batch Adam with cosine decay on ``L = 1/2 E||f(E_0)[:, -1] - (0, 0, w, 1)||^2`` over a fixed sample."""
    if config.parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"unknown parameterisation {config.parameterisation!r}; known: {', '.join(PARAMETERISATIONS)}")
    lam = np.asarray(lam, dtype=float)
    gen = torch.Generator().manual_seed(config.seed)
    stats = loss_statistics(lam, config.n, config.prompts, gen)
    params, build = PARAMETERISATIONS[config.parameterisation](lam, config.init_scale, gen)
    optimiser = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=config.steps)
    losses = np.empty(config.steps)
    for step in tqdm(range(config.steps), desc="train LSA", disable=None):
        loss = stats.loss(*build())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses[step] = loss.item()
    v, w = build()
    return TrainResult(v=v.detach().numpy().copy(), w=w.detach().numpy().copy(), losses=losses)
