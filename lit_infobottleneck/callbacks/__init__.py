"""Lightning callbacks: weight schedules (and, next, information-plane metrics)."""

from lit_infobottleneck.callbacks.beta_schedule import BetaSchedule

__all__ = ["BetaSchedule"]
