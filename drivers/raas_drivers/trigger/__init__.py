"""The trigger board: one pulse per cycle to every sensor, so all readings share one instant."""

from raas_drivers.trigger.driver import TriggerAck, TriggerDriver

__all__ = ["TriggerAck", "TriggerDriver"]
