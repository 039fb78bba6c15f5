"""Lightning callbacks: information-plane metrics of any LightningModule, weight schedules."""

from lit_infobottleneck.callbacks.beta_schedule import BetaSchedule
from lit_infobottleneck.callbacks.info_metrics import InfoMetrics

__all__ = ["BetaSchedule", "InfoMetrics"]
