"""Tests that re-prove a path a `make test` test already covers: `make test-slow` runs them (before
each release, and by whoever changes the code they cover); `make test` leaves them out to stay
within its time budget. Each entry names where `make test` covers its path. A key is a node-id
prefix under tests/; conftest.py refuses a key that names no collected test of a
collected file (whole files only: a node id or -k collects part of one)."""

from __future__ import annotations

#: node-id prefix -> where `make test` covers the same path
RELEASE: dict[str, str] = {
    "test_benchmarks.py::test_make_bench_toy_writes_every_row_finite": "the bench harness by test_llama7b_benchmark_runs_its_tiny_shape_* and "
    "test_auroc_benchmark_*; each benchmarked stage by its own stage tests",
    "test_deepspeed.py::test_deepspeed_zero2_smoke_fit_on_cpu": "ZeRO-2 fit, sharded last.ckpt without the base: test_deepspeed_resume_keeps_the_history_*; "
    "best-checkpoint scoring under DeepSpeed: test_deepspeed_zero3_two_ranks_exports_*",
    "test_deepspeed.py::test_deepspeed_zero3_resume_matches_an_uninterrupted_run": "DeepSpeed resume: test_deepspeed_resume_keeps_the_history_* (ZeRO-2); ZeRO-3 sharded "
    "save and gather: test_deepspeed_zero3_two_ranks_exports_the_whole_adapter",
    "test_deepspeed.py::test_deepspeed_zero3_sft_then_dpo": "ZeRO-3: test_deepspeed_zero3_two_ranks_exports_*; SFT and DPO on two ranks: "
    "test_dpo.py::test_two_process_ddp_run, test_preference_stage.py::test_two_process_ddp_run",
    "test_preference_stage.py::test_two_rank_deepspeed_run": "the preference stage on two ranks: test_preference_stage.py::test_two_process_ddp_run[kto-kto]; "
    "ZeRO-3: test_deepspeed_zero3_two_ranks_exports_*",
    "test_preference_stage.py::test_two_process_ddp_run[dpo-orpo]": "the same stage on two ranks: test_two_process_ddp_run[kto-kto], test_dpo.py::"
    "test_two_process_ddp_run; ORPO: test_runs_from_the_command_line[dpo-orpo]",
    "test_grid.py::test_killed_grid_resumes_to_the_same_report": "a rerun skips finished runs: test_rerun_skips_every_finished_run; a killed runner's run: "
    "test_hardening_commands.py::test_a_run_dies_with_its_runner_killed_by_sigkill",
    "test_sweep.py::test_killed_sweep_resumes_with_two_workers_and_writes_best": "two workers of one sweep to its end: test_two_workers_share_a_journal_file_storage",
    "test_downstream.py::test_fit_beats_chance_and_writes_predictions[los-multiclass]": "a downstream fit beating chance: [mor-binary]; multiclass AUROC: test_metrics.py",
    "test_downstream.py::test_fit_beats_chance_and_writes_predictions[proc-multilabel]": "a downstream fit beating chance: [mor-binary]; multilabel prediction files: "
    "test_predict.py (diag), test_export.py::test_merged_multilabel_classifier_*",
    "test_downstream.py::test_encoder_baselines_run_end_to_end_on_minilm[bert_full]": "the encoder path through make: [bert_lora] (full fine-tuning only trains more weights)",
    "test_scale.py::test_two_rank_downstream_scores_every_admission_once[zero3]": "[ddp] of the same test; ZeRO-3: test_deepspeed_zero3_two_ranks_exports_*",
    "test_scale.py::test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run": "SIGKILL mid-run, then resume: test_resume_ends.py's kill point 'mid-run, ...'",
    "test_resume_ends.py::test_a_run_killed_around_its_last_checkpoint_resumes_to_the_same_end"
    "[after the last step, before its checkpoint]": "the kill points 'mid-run, ...' and 'after the last step's checkpoint ...' of this test",
    "test_resume_ends.py::test_a_run_killed_around_its_last_checkpoint_resumes_to_the_same_end"
    "[after the final validation, before the checkpoints' update]": "the kill points 'mid-run, ...' and 'after the last step's checkpoint ...' of this test",
    "test_resume_ends.py::test_a_run_killed_around_its_last_checkpoint_resumes_to_the_same_end"
    "[after fit, while the best weights are scored]": "the kill points 'mid-run, ...' and 'after the last step's checkpoint ...' of this test",
    "test_hardening_commands.py::test_two_downstream_runs_started_together_into_one_folder": "the run-directory lock every stage shares: test_two_runs_started_together_*",
    "test_notes.py::test_packed_perplexity_equals_per_note_perplexity[flex_attention]": "the document mask reaching the kernel: [None] (SDPA) and [eager] of this test; "
    "the flag reaching the model: test_budget.py::test_attention_kernel_reaches_the_model_*",
}
