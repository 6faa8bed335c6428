"""Training: the LightningModule, its schedule and callbacks, run directories and configs."""
