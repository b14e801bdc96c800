"""Hugging Face datasets hub -> records (optional: `datasets` is not a core dependency)."""

from __future__ import annotations

from rationalign.data.readers.common import LoadResult, check_task, instruction_for
from rationalign.data.records import Record, RecordError


def _import_datasets():
    try:
        import datasets
    except ImportError:
        raise ImportError("data=hub needs the optional package 'datasets' (pip install datasets); "
                          "use data=local with files on disk otherwise") from None
    return datasets


def load_hub(name: str, split: str, task: str, instruction: str | None = None, *,
             config: str | None = None, source_field: str = "src", target_field: str | None = "tgt",
             references_field: str | None = None, **load_kwargs) -> LoadResult:
    """Rows of `name`/`split` mapped field by field; every row becomes a record."""
    check_task(task, f"hub:{name}")
    datasets = _import_datasets()
    ds = datasets.load_dataset(name, config, split=split, **load_kwargs)
    records = []
    for i, row in enumerate(ds):
        where = f"hub:{name}[{split}]:{i}"
        if source_field not in row:
            raise RecordError(f"{where}: missing field '{source_field}'")
        source = row[source_field]
        if not isinstance(source, str) or not source.strip():
            raise RecordError(f"{where}: field '{source_field}' is empty or not a string")
        target = row.get(target_field) if target_field else None
        refs = list(row[references_field]) if references_field else None
        records.append(Record(
            id=f"{task}-{name.replace('/', '_')}-{split}-{i:06d}", task=task,
            instruction=instruction_for(task, instruction), source=source.strip(),
            target=target if target is None else str(target).strip(),
            references=refs, meta={"origin": f"hub:{name}", "split": split, "row": i},
        ))
    return LoadResult(records)
