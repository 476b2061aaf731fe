"""What the cell tests share: the arguments of a tiny in-process ``zoo fit`` on the adding problem."""

# 4 steps on T=12, batch 8, 16 validation and test sequences, diagnostics on (the default), no banners;
# a test adds the cell and its settings.
TINY_FIT = ["--data", "AddingProblem", "--data.seq_len", "12", "--data.batch_size", "8",
            "--data.batches_per_epoch", "3", "--data.val_size", "16", "--data.test_size", "16",
            "--trainer.max_steps", "4", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
            "--seed_everything", "0", "--flush_denormal", "false"]
