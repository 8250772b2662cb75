"""JSON Schemas shipped with farol_train: the trainer state a checkpoint holds."""
