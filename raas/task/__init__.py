"""Tasks a policy is scored on. First: Dactyl's block reorientation (raas.task.reorientation) and
its evaluation protocol (raas.task.evaluation)."""
