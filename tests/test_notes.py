"""NotesDataModule: cleaning, patient split, packing, caching and bad input."""

from __future__ import annotations

import csv
import gzip
import itertools
import shutil

import pytest
import torch

from clinical_peft.data import notes as notes_module
from clinical_peft.data.notes import (
    NOTE_COLUMNS,
    NotesDataModule,
    clean_note,
    is_held_out,
    iter_clean_notes,
    note_paths,
    pack_blocks,
)
from clinical_peft.util.errors import InputError


def make_module(data_dir, tokenizer, tmp_path, **kwargs) -> NotesDataModule:
    kwargs.setdefault("block_size", 64)
    return NotesDataModule(
        str(data_dir), str(tokenizer), cache_dir=str(tmp_path / "cache"), **kwargs
    )


def write_notes_csv(path, rows, columns=NOTE_COLUMNS) -> None:
    with gzip.open(path, "wt", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def note_row(subject: str, text: str) -> list[str]:
    return [f"{subject}-DS-1", subject, "2" + subject, "DS", "1", "", "", text]


def test_clean_note_removes_deid_brackets_and_whitespace():
    raw = "Name:  [**Known lastname 123**]\nDischarge  Date: [**2150-3-2**]\n\n  Stable."
    assert clean_note(raw) == "Name: Known lastname 123 Discharge Date: 2150-3-2 Stable."
    assert clean_note(" \n\t ") == ""


def test_patient_split_is_stable_and_has_no_leakage(notes_dir, tiny_model, tmp_path):
    counts = {"notes": 0, "skipped_empty": 0}
    notes = list(iter_clean_notes(note_paths(notes_dir, "both"), counts))
    sides = {}
    for note in notes:
        side = is_held_out(note["subject_id"], 0.1, seed=0)
        assert sides.setdefault(note["subject_id"], side) == side
    held_out = sum(sides.values())
    assert 0 < held_out < len(sides)
    # about 10 % of patients held out, and a different seed gives a different split
    assert abs(held_out / len(sides) - 0.1) < 0.08
    other = {s: is_held_out(s, 0.1, seed=1) for s in sides}
    assert other != sides

    module = make_module(notes_dir, tiny_model, tmp_path)
    module.prepare_data()
    stats = module.stats
    assert stats["train_patients"] + stats["val_patients"] == len(sides)
    assert stats["val_patients"] == held_out
    assert stats["train_notes"] + stats["val_notes"] == len(notes)


def test_packing_loses_and_duplicates_no_token():
    notes = [[1, 5, 6, 2], [1, 7, 2], [1] + list(range(10, 40)) + [2], [1, 8, 2]]
    packed = pack_blocks(notes, block_size=8, pad_id=0)
    stream = list(itertools.chain.from_iterable(notes))
    assert [t for block in packed["input_ids"] for t in block if t != 0] == stream
    # every token is its own target once, except where nothing of its note precedes it in the
    # block (a note's first token, and a long note's first token in each further block)
    for ids, labels, positions in zip(*packed.values()):
        assert [t for t, p in zip(ids, positions) if p > 0] == [t for t in labels if t != -100]
    # 4 note starts, and the 32-token note goes on at the start of 4 further blocks
    scored = sum(t != -100 for block in packed["labels"] for t in block)
    assert scored == len(stream) - 4 - 4
    assert all(len(block) == 8 for block in packed["input_ids"])
    for ids, labels in zip(packed["input_ids"], packed["labels"]):  # padding is never a label
        assert all(label == -100 for t, label in zip(ids, labels) if t == 0)


def test_packed_positions_restart_at_every_note_and_every_block():
    notes = [[1, 5, 6, 2], [1, 7, 2], [1, 10, 11, 12, 13, 14, 2]]
    packed = pack_blocks(notes, block_size=6, pad_id=0)
    assert packed["input_ids"] == [
        [1, 5, 6, 2, 0, 0],  # note 2 does not fit what is left: padding, not a cut
        [1, 7, 2, 1, 10, 11],  # note 3 is longer than a block: it fills what is left
        [12, 13, 14, 2, 0, 0],
    ]
    assert packed["position_ids"] == [[0, 1, 2, 3, 0, 0], [0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 0]]
    assert packed["labels"][1] == [-100, 7, 2, -100, 10, 11]  # the next note's BOS is no target


@pytest.mark.parametrize("attention", [None, "eager", "flex_attention"])
def test_packed_perplexity_equals_per_note_perplexity(notes_dir, tiny_model, tmp_path, attention):
    """Document-masked packing scores each note exactly as the paper's one-note-at-a-time
    recipe does (held-out NLL and token count), for notes shorter than a block, under each
    attention kernel (`--model.attn_implementation`; None: SDPA)."""
    from clinical_peft.stages.pretrain import DomainAdaptation

    torch.manual_seed(0)
    stage = DomainAdaptation(base_model=str(tiny_model), attn_implementation=attention).eval()
    assert stage.model.config._attn_implementation == (attention or "sdpa")
    with torch.no_grad():  # a LoRA update that is not zero, so the adapter counts too
        for name, param in stage.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)

    def val_nll(mode: str) -> tuple[float, float]:
        module = make_module(
            notes_dir, tiny_model, tmp_path / mode, mode=mode, block_size=600,
            note_types="radiology", max_notes=80, eval_batch_size=4,
        )  # fmt: skip
        module.setup()
        if mode == "pad_per_note":  # every note fits, so nothing is truncated
            assert all(len(ex["input_ids"]) < 600 for ex in module.datasets["val"])
        nll = tokens = 0.0
        with torch.no_grad():
            for batch in module.val_dataloader():
                n, t = stage(batch)
                nll, tokens = nll + float(n), tokens + float(t)
        return nll, tokens

    (packed, packed_tokens), (alone, alone_tokens) = val_nll("pack"), val_nll("pad_per_note")
    assert packed_tokens == alone_tokens > 0
    assert packed / packed_tokens == pytest.approx(alone / alone_tokens, abs=1e-5)


def test_packed_blocks_cover_the_tokenized_corpus(notes_dir, tiny_model, tmp_path):
    module = make_module(notes_dir, tiny_model, tmp_path, max_notes=60)
    module.setup()
    tok = module.tokenizer
    counts = {"notes": 0, "skipped_empty": 0}
    texts = [n["text"] for n in iter_clean_notes(module.paths, counts, max_notes=60)]
    expected = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 2 for t in texts)
    got = sum(
        int((ex["input_ids"] != tok.pad_token_id).sum())
        for s in ("train", "val")
        for ex in module.datasets[s]
    )
    assert got == expected  # BOS + text + EOS of every note, nothing lost or repeated
    batch = next(iter(module.train_dataloader()))
    assert batch["input_ids"].shape == (module.batch_size, 64)
    # notes meet inside blocks: EOS then the next note's BOS
    boundary = [tok.eos_token_id, tok.bos_token_id]
    blocks = [ex["input_ids"].tolist() for ex in module.datasets["train"]]
    assert any(b[i : i + 2] == boundary for b in blocks for i in range(len(b) - 1))


@pytest.mark.slow
def test_parallel_tokenization_gives_the_same_blocks(notes_dir, tiny_model, tmp_path):
    built = []
    for procs in (1, 2):  # the process count is not in the cache key: it must not matter
        module = make_module(notes_dir, tiny_model, tmp_path / str(procs), tokenize_num_proc=procs)
        module.setup()
        built.append({s: module.datasets[s]["input_ids"] for s in ("train", "val")})
    for split in ("train", "val"):
        assert len(built[0][split]) == len(built[1][split])
        assert all(map(torch.equal, built[0][split], built[1][split]))


def test_pad_per_note_mode_truncates_each_note_alone(notes_dir, tiny_model, tmp_path):
    module = make_module(notes_dir, tiny_model, tmp_path, mode="pad_per_note", max_notes=50)
    module.setup()
    assert module.stats["train_examples"] == module.stats["train_notes"]
    batch = next(iter(module.train_dataloader()))
    assert batch["input_ids"].shape[1] == 64
    first = batch["input_ids"][:, 0]
    assert (first == module.tokenizer.bos_token_id).all()  # each row is one note's start
    assert ((batch["labels"] == -100) == (batch["attention_mask"] == 0)).all()


def test_second_run_uses_the_cache_and_does_not_tokenize(
    notes_dir, tiny_model, tmp_path, monkeypatch
):
    first = make_module(notes_dir, tiny_model, tmp_path)
    first.prepare_data()
    assert first.cache_hit is False

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(notes_module.NotesDataModule, "_build", fail)
    second = make_module(notes_dir, tiny_model, tmp_path)
    second.prepare_data()
    assert second.cache_hit is True and second.stats == first.stats
    # anything that changes the result changes the key: a new block size is built afresh
    with pytest.raises(AssertionError, match="tokenized again"):
        make_module(notes_dir, tiny_model, tmp_path, block_size=32).prepare_data()


def test_note_types_select_files(notes_dir):
    assert [p.name for p in note_paths(notes_dir, "radiology")] == ["radiology.csv.gz"]
    assert len(note_paths(notes_dir, "both")) == 2
    with pytest.raises(InputError, match="note_types"):
        note_paths(notes_dir, "nursing")


# --- bad input ---------------------------------------------------------------------------


def prepare(folder, tiny_model, tmp_path, **kwargs):
    make_module(folder, tiny_model, tmp_path, note_types="discharge", **kwargs).prepare_data()


def test_missing_folder_and_file(tiny_model, tmp_path):
    with pytest.raises(InputError, match="folder not found"):
        prepare(tmp_path / "nope", tiny_model, tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"discharge\.csv\.gz: file not found"):
        prepare(tmp_path / "empty", tiny_model, tmp_path)


def test_missing_column_is_named(tiny_model, tmp_path):
    write_notes_csv(tmp_path / "discharge.csv.gz", [["1", "x"]], columns=["note_id", "body"])
    with pytest.raises(InputError, match=r"discharge\.csv\.gz: missing column 'subject_id'"):
        prepare(tmp_path, tiny_model, tmp_path)


def test_empty_and_null_texts_are_skipped_and_counted(tiny_model, tmp_path):
    rows = [note_row(str(100 + i), f"Chief Complaint: cough number {i}. " * 5) for i in range(30)]
    rows += [note_row("900", ""), note_row("901", "  \n "), note_row("902", "[** **]")]
    write_notes_csv(tmp_path / "discharge.csv.gz", rows)
    module = make_module(tmp_path, tiny_model, tmp_path, note_types="discharge")
    module.prepare_data()
    assert module.stats["skipped_empty"] == 3  # "[** **]" is empty once cleaned
    assert module.stats["notes"] == 30


def test_duplicate_note_ids_are_counted_and_kept(tiny_model, tmp_path, caplog):
    rows = [note_row(str(100 + i), f"Chief Complaint: cough number {i}. " * 5) for i in range(30)]
    again = [
        note_row("100", "Chief Complaint: a second note under id 100-DS-1."),
        note_row("100", "Chief Complaint: a third one."),
        note_row("101", "Chief Complaint: 101-DS-1 once more."),
        note_row("102", ""),  # empty: skipped, so its id is not counted twice
    ]
    write_notes_csv(tmp_path / "discharge.csv.gz", rows + again)
    write_notes_csv(tmp_path / "radiology.csv.gz", [note_row("103", "Chest film: clear. " * 3)])
    module = make_module(tmp_path, tiny_model, tmp_path)
    with caplog.at_level("WARNING"):
        module.setup()
    assert module.stats["duplicate_note_ids"] == 4  # 100 twice, 101 and 103 once more each
    assert module.stats["notes"] == 34  # counted, not dropped
    assert "4 duplicate note_ids" in caplog.text
    # the blocks hold every note read, duplicates included, in file order
    counts = {"notes": 0, "skipped_empty": 0}
    texts = [n["text"] for n in iter_clean_notes(module.paths, counts)]
    tok = module.tokenizer
    expected = sum(len(tok(t, add_special_tokens=False)["input_ids"]) + 2 for t in texts)
    got = sum(
        int((ex["input_ids"] != tok.pad_token_id).sum())
        for s in ("train", "val")
        for ex in module.datasets[s]
    )
    assert got == expected
    # only the notes read count: the first 31 hold one duplicate
    first = make_module(tmp_path, tiny_model, tmp_path, max_notes=31)
    first.prepare_data()
    assert first.stats["duplicate_note_ids"] == 1


def test_only_empty_texts_is_an_error(tiny_model, tmp_path):
    write_notes_csv(tmp_path / "discharge.csv.gz", [note_row("1", ""), note_row("2", " ")])
    with pytest.raises(InputError, match="no non-empty notes"):
        prepare(tmp_path, tiny_model, tmp_path)


def test_non_utf8_bytes(tiny_model, tmp_path):
    header = ",".join(NOTE_COLUMNS).encode()
    row = b'1-DS-1,1,21,DS,1,,,"caf\xe9 au lait spots"'
    with gzip.open(tmp_path / "discharge.csv.gz", "wb") as f:
        f.write(header + b"\n" + row + b"\n")
    with pytest.raises(InputError, match="field 'text': bytes that are not UTF-8"):
        prepare(tmp_path, tiny_model, tmp_path)


def test_truncated_gzip(notes_dir, tiny_model, tmp_path):
    data = (notes_dir / "discharge.csv.gz").read_bytes()
    (tmp_path / "discharge.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        prepare(tmp_path, tiny_model, tmp_path)


def test_interrupted_build_leaves_no_cache_entry(notes_dir, tiny_model, tmp_path):
    shutil.copy(notes_dir / "discharge.csv.gz", tmp_path / "discharge.csv.gz")
    data = (tmp_path / "discharge.csv.gz").read_bytes()
    (tmp_path / "discharge.csv.gz").write_bytes(data[: len(data) - 100])
    with pytest.raises(InputError):
        prepare(tmp_path, tiny_model, tmp_path)
    entries = [p for p in (tmp_path / "cache" / "notes").iterdir() if not p.name.startswith(".")]
    assert entries == []


def test_streamed_split_gives_the_blocks_of_a_direct_reference(notes_dir, tiny_model, tmp_path):
    """The build keeps no per-note lists, yet gives what splitting, tokenizing and packing the
    notes by hand gives, across several arrange batches (1000 notes each) and both splits."""
    counts = {"notes": 0, "skipped_empty": 0}
    texts = [n["text"] for n in iter_clean_notes(note_paths(notes_dir, "both"), counts)]
    rows = [note_row(str(1000 + i % 397), texts[i % len(texts)][: 40 + 7 * (i % 50)])
            for i in range(2300)]  # fmt: skip
    folder = tmp_path / "notes"
    folder.mkdir()
    write_notes_csv(folder / "discharge.csv.gz", rows)
    module = make_module(folder, tiny_model, tmp_path, note_types="discharge", block_size=64)
    module.setup()
    tok = module.tokenizer
    sides: dict[bool, list] = {False: [], True: []}
    for _, subject, *_, text in rows:
        ids = tok(clean_note(text), add_special_tokens=False)["input_ids"]
        sides[is_held_out(subject, 0.1, 0)].append([tok.bos_token_id, *ids, tok.eos_token_id])
    for split, held in (("train", False), ("val", True)):
        expected = {"input_ids": [], "labels": [], "position_ids": []}
        for start in range(0, len(sides[held]), 1000):  # blocks close at each arrange batch
            packed = pack_blocks(sides[held][start : start + 1000], 64, tok.pad_token_id)
            for key, blocks in packed.items():
                expected[key] += blocks
        got = module.datasets[split].with_format(None)[:]  # columns as plain lists
        assert len(got["input_ids"]) == len(expected["input_ids"])
        for key, blocks in expected.items():
            assert got[key] == blocks, (split, key)
    subjects = {held: {r[1] for r in rows if is_held_out(r[1], 0.1, 0) == held} for held in sides}
    assert module.stats["train_patients"] == len(subjects[False]) > 0
    assert module.stats["val_patients"] == len(subjects[True]) > 0
    assert module.stats["train_notes"] == len(sides[False]) > 1000
    assert module.stats["val_notes"] == len(sides[True])
