"""Training scripts the `trl-grpo-plus` command launches through accelerate, as `trl` launches its own."""
