"""Unpaired feedback for KTO: one answer per row, judged good or bad (a clinician's thumbs up or
down), not a ranked pair.

Layout: `<data_dir>/<task>/kto_{train,val,test}.jsonl` with `{"prompt", "completion",
"label": true|false}`. Tokenized, cached and loaded as the other instruction data
(`clinical_peft.data.instructions`).

KTO's reference point is estimated from mismatched pairs: each row's prompt with the completion
of the row before it in the file (skipping rows of the same prompt), as TRL builds them with
sequential batches. The pairing is fixed by the file, so reference log-probs of both can be
precomputed and cached per row.
"""

from __future__ import annotations

import torch

from clinical_peft.data.instructions import PreferenceDataModule


class UnpairedPreferenceDataModule(PreferenceDataModule):
    """KTO data: each batch holds the rows' (prompt, completion) sequences first, then the same
    prompts with their mismatched completions, and `label` (True: desirable); `index` as in
    PreferenceDataModule."""

    kind, keys, booleans = "kto", ("prompt", "completion", "label"), ("label",)
    unpaired = True  # the stage checks that its loss reads this kind of row

    def tokenize_split(self, rows: list[dict], counts: dict) -> list[dict]:
        examples = []
        for row in rows:
            prompt = self.fitting_prompt(row, counts)
            if prompt is None:
                continue
            room = self.max_length - len(prompt)
            examples.append(
                {
                    "line": row["line"],
                    "prompt": row["prompt"],  # dropped below: only to pair by prompt
                    "prompt_ids": prompt,
                    "completion_ids": self.completion_ids(row["completion"])[:room],
                    "label": row["label"],
                    "reference": row["completion"] if row["label"] else "",
                }
            )
        counts["desirable"] = sum(ex["label"] for ex in examples)
        for i, ex in enumerate(examples):
            other = examples[mismatched_row(examples, i)]["completion_ids"]
            ex["kl_completion_ids"] = other[: self.max_length - len(ex["prompt_ids"])]
        return [{k: v for k, v in ex.items() if k != "prompt"} for ex in examples]

    def generation_examples(self, split: str = "test", capped: bool = True) -> list[dict]:
        """The desirable rows' prompts, with their completions as the reference answers (at
        most `max_eval_examples` unless not `capped`)."""
        if not hasattr(self, "datasets"):
            self.setup()
        if split not in self.datasets:
            return []
        desirable = [ex for ex in self.datasets[split] if ex["label"]]
        return [
            {"id": ex["line"], "prompt_ids": ex["prompt_ids"], "reference": ex["reference"]}
            for ex in desirable[: self.max_eval_examples if capped else None]
        ]

    def collate(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        answers = [ex["completion_ids"] for ex in examples]
        answers += [ex["kl_completion_ids"] for ex in examples]
        return {
            **self.prompts_and_answers(2 * [ex["prompt_ids"] for ex in examples], answers),
            "label": torch.tensor([ex["label"] for ex in examples], dtype=torch.bool),
            "index": torch.tensor([ex["index"] for ex in examples], dtype=torch.long),
        }


def mismatched_row(examples: list[dict], i: int) -> int:
    """The nearest row before row `i` (cyclically) with another prompt; the row before if every
    row has the same prompt."""
    n = len(examples)
    for step in range(1, n):
        j = (i - step) % n
        if examples[j]["prompt"] != examples[i]["prompt"]:
            return j
    return (i - 1) % n
