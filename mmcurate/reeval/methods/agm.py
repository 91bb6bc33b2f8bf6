"""``agm``: adaptive gradient modulation.

Li et al., "Boosting Multi-modal Model Performance with Adaptive Gradient Modulation", ICCV 2023;
official code ``lihong2303/AGM`` (``model/CREMAD_net.py`` ``GradMod``, ``run/CREMAD_main.py``).
Per step, as the official late-fusion model:

* f(a, v) is the training forward itself (train mode); f(a, 0) and f(0, v), the other input
  zeroed, run in eval mode *with* gradient, as part of the same graph.
* The mono-modal responses are m_a = 1/2 [(f(a,v) - f(0,v)) + f(a,0)] and
  m_v = 1/2 [(f(a,v) - f(a,0)) + f(0,v)] (no f(0,0) term: the official code computes f(0,0) but
  never uses it), and the model's output is m_a + m_v (= f(a, v)).
* Scores s_m = mean_i -log softmax(m_m)_{y_i} (probabilities floored at 1e-8);
  r_a = exp(s_v - s_a), r_v = 1/r_a; the reference r_bar uses running means of the scores over
  all previous steps; kappa_m = exp(alpha * min(r_bar_m - r_m, cap)), cap 10.
* The backward hooks multiply the gradient flowing into m_a by kappa_a and into m_v by kappa_v,
  so each modality's encoder *and* its fusion-head columns (and the probes' paths) are scaled,
  not only the encoder.
* After backward, when an entry of the fusion classifier's weight gradient leaves [-1, 1], all
  gradients are clipped to norm 1.0 (the CREMA-D script).

``variant=balancemm`` reproduces BalanceMM's ``AGM_trainer.py`` instead: eval-mode no-gradient
probes including f(a, v), responses 1/2 (f(a,v) - f(0,v)) and 1/2 (f(a,v) - f(a,0)) (its Shapley
helper skips the empty coalition), ratios exp(2 (s_m - mean s)) on the losses (the sign is the
reverse of the official code: it speeds up a modality that is further ahead than usual), the
coefficient applied to the encoders' non-1-D gradients only, cap 7, clip 5 when the head gradient
leaves [-5, 5]. The modulation window is the whole run unless ``modulation_start/end`` say
otherwise; outside it the official code leaves the last coefficients in its hooks, mmcurate uses 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmcurate.common.errors import MMCurateError
from mmcurate.models import AVOutput
from mmcurate.reeval.batches import Batch
from mmcurate.reeval.methods.base import Method, TrainContext, epochs_where, in_window

#: the official two-modality code, and BalanceMM's rewrite
VARIANTS: dict[str, dict[str, float]] = {
    "official": {"cap": 10.0, "clip_trigger": 1.0, "clip_norm": 1.0},
    "balancemm": {"cap": 7.0, "clip_trigger": 5.0, "clip_norm": 5.0},
}
#: probabilities are floored here before the log, as both codes do
PROB_FLOOR = 1e-8


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by a constant (the official backward hook)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:  # noqa: D102
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: D102
        return grad * ctx.scale, None


def scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    return _ScaleGrad.apply(x, scale)


def agm_responses(f_av: torch.Tensor, f_a0: torch.Tensor, f_0v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official mono-modal responses (m_a, m_v); m_a + m_v = f_av."""
    m_a = 0.5 * (f_av - f_0v + f_a0)
    m_v = 0.5 * (f_av - f_a0 + f_0v)
    return m_a, m_v


def agm_score(response: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean negative log-probability of the true class (probability floored at 1e-8)."""
    p = F.softmax(response.detach(), dim=1).gather(1, labels[:, None]).clamp(min=PROB_FLOOR)
    return float(-p.log().mean())


def agm_coefficients(
    scores: tuple[float, float],
    running: tuple[float, float],
    alpha: float,
    cap: float = 10.0,
    variant: str = "official",
) -> tuple[float, float]:
    """(kappa_audio, kappa_visual) from this step's scores (losses) and their running means."""
    s_a, s_v = scores
    t_a, t_v = running
    if variant == "official":
        r = (math.exp(s_v - s_a), math.exp(s_a - s_v))
        r_bar = (math.exp(t_v - t_a), math.exp(t_a - t_v))
    else:  # BalanceMM: exp(M/(M-1) (s_m - mean s)) on the losses
        r = (math.exp(s_a - s_v), math.exp(s_v - s_a))
        r_bar = (math.exp(t_a - t_v), math.exp(t_v - t_a))
    return tuple(math.exp(alpha * min(rb - rr, cap)) for rb, rr in zip(r_bar, r))  # type: ignore[return-value]


def running_mean(old: float, new: float, iteration: int) -> float:
    """old * (it - 1) / it + new / it: the mean over iterations 1..it."""
    return old * (iteration - 1) / iteration + new / iteration


class AGM(Method):
    name = "agm"
    title = "AGM"
    reference = "Li et al., ICCV 2023"
    category = "optimisation"
    paper = "Boosting Multi-modal Model Performance with Adaptive Gradient Modulation"
    #: alpha 0.1 as BalanceMM (official argparse default 1.0; the value is per data set)
    defaults = {"alpha": 0.1, "variant": "official", "modulation_start": 0, "modulation_end": None}
    diagnostics = {
        "kappa_audio": "kappa audio",
        "kappa_visual": "kappa visual",
        "score_audio": "score audio (-log p, response)",
        "score_visual": "score visual (-log p, response)",
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.params["variant"] not in VARIANTS:
            raise MMCurateError(
                f"method agm: variant must be one of {', '.join(VARIANTS)}, got {self.params['variant']!r}"
            )
        self.running = (0.0, 0.0)
        self.iterations = 0
        self._coeffs = (1.0, 1.0)
        self._scores = (0.0, 0.0)

    @property
    def variant(self) -> dict[str, float]:
        return VARIANTS[str(self.params["variant"])]

    def _active(self, ctx: TrainContext) -> bool:
        return in_window(ctx.epoch, int(self.params["modulation_start"]), self.params["modulation_end"])

    def forward(self, model: nn.Module, batch: Batch, ctx: TrainContext) -> Any:
        zeros_a, zeros_v = torch.zeros_like(batch.audio), torch.zeros_like(batch.frames)
        if self.params["variant"] == "balancemm":  # eval-mode probes without gradient, then the training forward
            with torch.no_grad():
                pairs = ((batch.audio, batch.frames), (batch.audio, zeros_v), (zeros_a, batch.frames))
                f_av, f_a0, f_0v = _probes(model, pairs)
            out: AVOutput = model(batch.audio, batch.frames)
            self._update(0.5 * (f_av - f_0v), 0.5 * (f_av - f_a0), batch.labels)
            return out
        out = model(batch.audio, batch.frames)  # f(a, v) in train mode: the official probe is the training forward
        f_a0, f_0v = _probes(model, ((batch.audio, zeros_v), (zeros_a, batch.frames)))  # eval mode, with gradient
        m_a, m_v = agm_responses(out.logits, f_a0, f_0v)
        self._update(m_a, m_v, batch.labels)
        k_a, k_v = self._coeffs if self._active(ctx) else (1.0, 1.0)
        fused = scale_grad(m_a, k_a) + scale_grad(m_v, k_v)
        return AVOutput(fused, out.audio_features, out.visual_features, out.audio_logits, out.visual_logits)

    def _update(self, m_a: torch.Tensor, m_v: torch.Tensor, labels: torch.Tensor) -> None:
        """This step's scores and coefficients (from the running means so far), then the running means."""
        scores = (agm_score(m_a, labels), agm_score(m_v, labels))
        self._coeffs = agm_coefficients(
            scores, self.running, float(self.params["alpha"]), self.variant["cap"], str(self.params["variant"])
        )
        self.iterations += 1
        self.running = (
            running_mean(self.running[0], scores[0], self.iterations),
            running_mean(self.running[1], scores[1], self.iterations),
        )
        self._scores = scores

    def loss(
        self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logs = {
            "kappa_audio": self._coeffs[0],
            "kappa_visual": self._coeffs[1],
            "score_audio": self._scores[0],
            "score_visual": self._scores[1],
        }
        return F.cross_entropy(out.logits, batch.labels), logs

    def after_backward(self, model: nn.Module, batch: Batch, out: Any, ctx: TrainContext) -> dict[str, float]:
        if not self._active(ctx):
            return {}
        if self.params["variant"] == "balancemm":
            for modality, k in zip(("audio", "visual"), self._coeffs):
                for p in getattr(model, f"{modality}_encoder").parameters():
                    if p.grad is not None and p.grad.dim() != 1:
                        p.grad.mul_(k)
        trigger = self.variant["clip_trigger"]
        head = _classifier_weights(model)
        if head and max(float(g.abs().max()) for g in head) > trigger:
            nn.utils.clip_grad_norm_(model.parameters(), self.variant["clip_norm"])
        return {}

    def schedule(self) -> dict[str, list[int]]:
        start, end = int(self.params["modulation_start"]), self.params["modulation_end"]
        return {"modulation": epochs_where(self.epochs, lambda e: in_window(e, start, end))}

    def state_dict(self) -> dict[str, Any]:
        return {"running": list(self.running), "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.running = tuple(state["running"])  # type: ignore[assignment]
        self.iterations = int(state["iterations"])


def _probes(model: nn.Module, inputs: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> list[torch.Tensor]:
    """Fused logits of ``model`` in eval mode for each (audio, frames) pair; the model is put back in train mode."""
    model.eval()
    try:
        return [model(a, v).logits for a, v in inputs]
    finally:
        model.train()


def _classifier_weights(model: nn.Module) -> list[torch.Tensor]:
    """Gradients of the fusion head's final classifier weight(s) (the official ``fc_out.weight``)."""
    head = model.head
    layers = [head.fc] if hasattr(head, "fc") else [m for m in head.modules() if isinstance(m, nn.Linear)]
    return [m.weight.grad for m in layers if m.weight.grad is not None]
