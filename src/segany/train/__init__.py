"""Training SAM-style models with the SAM paper's recipe (App. A): prompt simulation
(prompts.py), losses (losses.py), and the trainer (`trainer.Trainer`, configured by
`config.TrainConfig`; `segany train --config FILE` on the command line)."""
