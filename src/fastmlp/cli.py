"""The ``fastmlp`` command line: train, evaluate and predict on data files, inspect and export
model files, serve them over HTTP.

    fastmlp train train.csv --target species --layers 64,32 --epochs 50 --validation-split 0.1 \\
            --early-stopping 5 -o iris.fmlp
    fastmlp evaluate iris.fmlp test.csv              # a metrics table; --json for machines
    fastmlp predict iris.fmlp new.csv -o out.csv     # columns matched by name; --proba; '-' = stdin/stdout
    fastmlp inspect iris.fmlp                        # summary, format, tensors, checksums, feature names
    fastmlp export iris.fmlp --format c -o iris_c/   # or --format onnx / keras
    fastmlp serve iris.fmlp fraud.fmlp --port 8501   # TF Serving v1 + Open Inference Protocol v2

A model trained from a table keeps its feature columns (numbers, or categories one-hot encoded),
the target's class names and the input scaling (a ``Normalization`` layer, so the model itself
takes raw features) in the file.  Data files: CSV with a header row, ``.npy`` (features only) or
``.npz`` (``x`` and, to train or evaluate, ``y``); ``-`` reads CSV from standard input.
"""
import argparse
import csv
import io
import json
import os
import sys

import numpy as np

MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}


class CLIError(Exception):
    """A user error: printed as 'fastmlp <command>: error: ...' with exit status 2."""


# ---------------------------------------------------------------------- reading tables
class Table:
    """Named columns: float arrays for numeric columns, string arrays for the others."""

    def __init__(self, names, columns, source):
        self.names, self.columns, self.source = list(names), dict(zip(names, columns)), source
        self.rows = len(columns[0]) if columns else 0

    def numeric(self, name):
        return self.columns[name].dtype.kind == "f"


def _open_text(path):
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    return open(path, newline="", encoding="utf-8-sig")   # a byte-order mark (Excel) is not part of a name


def read_table(path, text_columns=()):
    """A CSV (header row), .npy or .npz file as a Table (numpy files give columns x0, x1, ... and y).
    ``text_columns`` are kept as text even when every value looks like a number (a model's
    categorical columns: '02134' stays '02134')."""
    if path != "-" and not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    low = path.lower()
    if low.endswith(".npy") or low.endswith(".npz"):
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise CLIError(f"{path}: not a readable numpy file ({e})") from None
        if low.endswith(".npz"):
            if "x" not in data:
                raise CLIError(f"{path}: an .npz file needs an array 'x' (and 'y' for training); it has "
                               f"{sorted(data.files)}")
            x, y = data["x"], data["y"] if "y" in data else None
        else:
            x, y = data, None
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        x = x.reshape(len(x), -1)
        if x.dtype.kind not in "biuf":
            raise CLIError(f"{path}: 'x' must be numeric; it is {x.dtype}")
        names = [f"x{i}" for i in range(x.shape[1])]
        cols = [x[:, i].astype(np.float64) for i in range(x.shape[1])]
        if y is not None:
            y = np.asarray(y).reshape(len(y), -1)
            if len(y) != len(x):
                raise CLIError(f"{path}: 'x' has {len(x)} rows and 'y' {len(y)}")
            if y.shape[1] != 1:
                raise CLIError(f"{path}: 'y' must be one column; it has {y.shape[1]}")
            names.append("y")
            cols.append(y[:, 0].astype(np.float64) if y.dtype.kind in "biuf" else y[:, 0].astype(str))
        return Table(names, cols, path)
    with _open_text(path) as fh:
        text = fh.read()
    return parse_csv(text, path, text_columns)


def parse_csv(text, source="<csv>", text_columns=()):
    """Parse CSV text with a header row; numeric columns become float64 (missing values NaN),
    the others (and ``text_columns``) arrays of stripped strings."""
    first, _, rest = text.partition("\n")
    if not first.strip():
        raise CLIError(f"{source}: empty file (expected a header row)")
    header = next(csv.reader([first]))
    names = [h.strip() for h in header]
    if len(set(names)) != len(names) or any(not n for n in names):
        raise CLIError(f"{source}: the header row must name every column once; got {names}")
    if not rest.strip():
        raise CLIError(f"{source}: no data rows")
    text_columns = set(text_columns) & set(names)
    fast = _parse_pyarrow(rest, names, text_columns)   # blank lines are skipped there too
    if fast is not None and len(fast[0]):
        return Table(names, fast, source)
    body = "\n".join(line for line in rest.splitlines() if line.strip())
    try:   # numbers only, no quotes, no gaps: numpy's C parser
        if '"' in body or text_columns:
            raise ValueError
        a = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
        if a.shape[1] != len(names):
            raise ValueError
        return Table(names, [a[:, i].copy() for i in range(len(names))], source)
    except ValueError:
        pass
    rows = list(csv.reader(io.StringIO(body)))
    for i, r in enumerate(rows):
        if len(r) != len(names):
            raise CLIError(f"{source}: line {i + 2} has {len(r)} fields; the header has {len(names)}")
    cols = []
    for j in range(len(names)):
        raw = [r[j].strip() for r in rows]
        if names[j] in text_columns:
            cols.append(np.array(raw, dtype=str))
            continue
        vals = np.empty(len(raw))
        numeric = True
        for i, v in enumerate(raw):
            if v.lower() in MISSING:
                vals[i] = np.nan
                continue
            try:
                vals[i] = float(v)
            except ValueError:
                numeric = False
                break
        cols.append(vals if numeric else np.array(raw, dtype=str))
    return Table(names, cols, source)


def _parse_pyarrow(body, names, text_columns):
    """The columns of CSV ``body`` through pyarrow's multithreaded reader when it is installed
    (the 'csv' extra), with the plain reader's rules: missing markers are NaN in numeric columns,
    text is stripped, anything else pyarrow infers (booleans, dates) is text.  None when pyarrow
    is absent or refuses the file: the plain reader then parses it (and words any error)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    nulls = sorted({v for m in MISSING for v in (m, m.upper(), m.capitalize())})
    try:
        table = pacsv.read_csv(
            pa.py_buffer(body.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=names),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in text_columns},
                                                 null_values=nulls, strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    cols = []
    for n in names:
        c = table.column(n)
        t = c.type
        if n not in text_columns and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
            cols.append(c.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64))
            continue
        text = np.char.strip(c.cast(pa.string()).to_numpy(zero_copy_only=False).astype(str))
        if n not in text_columns:   # numbers pyarrow did not take (spaces, other missing markers)?
            missing = np.isin(np.char.lower(text), list(MISSING))
            try:
                cols.append(np.where(missing, "nan", text).astype(np.float64))
                continue
            except ValueError:
                pass
        cols.append(text)
    return cols


# ---------------------------------------------------------------------- features
def _select(table, target, features, ignore):
    if features:
        names = [f.strip() for f in features.split(",") if f.strip()]
        missing = [n for n in names if n not in table.columns]
        if missing:
            raise CLIError(f"--features names column(s) {missing} that {table.source} lacks (columns: "
                           f"{table.names})")
    else:
        drop = {f.strip() for f in (ignore or "").split(",") if f.strip()}
        unknown = sorted(drop - set(table.names))
        if unknown:
            raise CLIError(f"--ignore names column(s) {unknown} that {table.source} lacks")
        names = [n for n in table.names if n != target and n not in drop]
    if target in names:
        raise CLIError(f"the target {target!r} cannot also be a feature")
    if not names:
        raise CLIError("no feature columns left")
    return names


def _fill_value(fill, column, name):
    if fill == "mean":
        m = np.nanmean(column) if np.isfinite(column).any() else 0.0
        return float(m)
    if fill == "zero":
        return 0.0
    try:
        return float(fill)
    except ValueError:
        raise CLIError(f"--fill must be 'mean', 'zero' or a number; got {fill!r}") from None


def describe_columns(table, names, fill):
    """The stored description of the feature columns: numeric (with its fill value) or categorical."""
    out = []
    for n in names:
        col = table.columns[n]
        if table.numeric(n):
            missing = int(np.isnan(col).sum())
            if missing and fill is None:
                raise CLIError(f"column {n!r} has {missing} missing value(s); pass --fill mean|zero|VALUE")
            out.append({"name": n, "type": "number",
                        "fill": _fill_value(fill, col, n) if fill is not None else None})
        else:
            cats = sorted(set(col.tolist()))
            if any(c.lower() in MISSING for c in cats) and fill is None:
                raise CLIError(f"column {n!r} has missing values; pass --fill to treat them as a category")
            if len(cats) > 1000:
                raise CLIError(f"column {n!r} has {len(cats)} distinct text values: too many for one-hot "
                               f"encoding (at most 1000); drop it with --ignore")
            out.append({"name": n, "type": "category", "categories": cats})
    return out


def encode(table, columns):
    """The model's input matrix from a table, columns matched by name, categories one-hot."""
    missing = [c["name"] for c in columns if c["name"] not in table.columns]
    if missing:
        raise CLIError(f"{table.source} lacks the model's feature column(s) {missing}")
    parts = []
    for c in columns:
        col = table.columns[c["name"]]
        if c["type"] == "number":
            if not table.numeric(c["name"]):
                bad = next(v for v in col.tolist() if _not_number(v))
                raise CLIError(f"column {c['name']!r} must be numbers; found {bad!r}")
            v = col.astype(np.float64)
            if np.isnan(v).any():
                if c.get("fill") is None:
                    raise CLIError(f"column {c['name']!r} has {int(np.isnan(v).sum())} missing value(s) and the "
                                   f"model was trained without --fill")
                v = np.where(np.isnan(v), c["fill"], v)
            parts.append(v.reshape(-1, 1))
        else:
            values = col if not table.numeric(c["name"]) else np.array([_num_text(v) for v in col.tolist()])
            cats = c["categories"]
            index = {k: i for i, k in enumerate(cats)}
            codes = np.array([index.get(v, -1) for v in values.tolist()])
            if (codes < 0).any():
                bad = str(values[codes < 0][0])
                raise CLIError(f"column {c['name']!r} has the value {bad!r}, unseen in training (known: "
                               f"{cats[:10]}{' ...' if len(cats) > 10 else ''})")
            onehot = np.zeros((len(codes), len(cats)))
            onehot[np.arange(len(codes)), codes] = 1.0
            parts.append(onehot)
    x = np.hstack(parts)
    bad = ~np.isfinite(x) | (np.abs(x) > np.finfo(np.float32).max)
    if bad.any():
        row, j = np.argwhere(bad)[0]
        name = feature_names(columns)[j]
        raise CLIError(f"column {name!r} has a value that is infinite or beyond float32's range (row {row + 1})")
    return x.astype(np.float32)


def _not_number(v):
    try:
        float(v)
        return False
    except ValueError:
        return True


def _num_text(v):
    return str(int(v)) if float(v).is_integer() else str(v)


def feature_names(columns):
    names = []
    for c in columns:
        if c["type"] == "number":
            names.append(c["name"])
        else:
            names.extend(f"{c['name']}={k}" for k in c["categories"])
    return names


# ---------------------------------------------------------------------- commands
def _check_output(path, force):
    if path and path != "-" and os.path.exists(path) and not force:
        raise CLIError(f"{path} exists; pass --force to overwrite it")


def _load_spec(path):
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise CLIError(f"--spec {path}: {e.strerror}") from None
    try:
        if path.lower().endswith(".toml"):
            try:
                import tomllib
            except ImportError:   # Python < 3.11
                raise CLIError("TOML spec files need Python 3.11 or newer; use JSON") from None
            spec = tomllib.loads(raw.decode())
        else:
            spec = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CLIError(f"--spec {path}: not valid {'TOML' if path.endswith('.toml') else 'JSON'} ({e})") from None
    known = {"layers", "activation", "dropout", "epochs", "batch_size", "learning_rate", "optimizer",
             "validation_split", "early_stopping", "task", "seed", "loss"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise CLIError(f"--spec {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    return spec


def cmd_train(args):
    import fastmlp
    from fastmlp import layers

    spec = _load_spec(args.spec)
    for key, value in spec.items():   # a flag given on the command line wins over the spec file
        if getattr(args, key) is None:
            setattr(args, key, value)
    defaults = {"layers": "64,32", "activation": "relu", "dropout": 0.0, "epochs": 50, "batch_size": 32,
                "learning_rate": 1e-3, "optimizer": "adam", "validation_split": 0.0, "task": "auto", "seed": 0}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.output == "-" or os.path.splitext(args.output)[1].lower() not in ("", ".fmlp"):
        raise CLIError(f"-o {args.output}: the trained model is a fastmlp file ('.fmlp'), which keeps the feature "
                       f"and class names; convert it afterwards with `fastmlp export --format keras|onnx|c`")
    _check_output(args.output, args.force)
    table = read_table(args.data)
    if args.target not in table.columns:
        raise CLIError(f"--target {args.target!r} is not a column of {args.data} (columns: {table.names})")
    names = _select(table, args.target, args.features, args.ignore)
    columns = describe_columns(table, names, args.fill)
    x = encode(table, columns)
    y_raw = table.columns[args.target]
    task = args.task
    if task == "auto":
        if not table.numeric(args.target):
            task = "classification"
        else:
            vals = y_raw[~np.isnan(y_raw)]
            task = "classification" if np.all(vals == np.round(vals)) and len(np.unique(vals)) <= 20 \
                else "regression"
    if table.numeric(args.target) and np.isnan(y_raw).any() or not table.numeric(args.target) and \
            any(v.lower() in MISSING for v in set(y_raw.tolist())):
        raise CLIError(f"the target {args.target!r} has missing values: drop those rows first")
    try:
        sizes = [int(v) for v in args.layers] if isinstance(args.layers, (list, tuple)) else \
            [int(v) for v in str(args.layers).split(",") if v.strip()]
    except ValueError:
        raise CLIError(f"--layers must be positive integers separated by commas; got {args.layers!r}") from None
    if any(s <= 0 for s in sizes):
        raise CLIError(f"--layers must be positive integers separated by commas; got {args.layers!r}")
    fastmlp.utils.set_random_seed(int(args.seed))
    meta = {"target": args.target, "task": task, "columns": columns, "feature_names": feature_names(columns)}
    if task == "classification":
        labels = y_raw if not table.numeric(args.target) else np.array([_num_text(v) for v in y_raw.tolist()])
        classes = sorted(set(labels.tolist()), key=lambda s: (not _is_number_text(s), _sort_key(s)))
        if len(classes) < 2:
            raise CLIError(f"the target {args.target!r} has one class only ({classes[0]!r})")
        index = {c: i for i, c in enumerate(classes)}
        y = np.array([index[v] for v in labels.tolist()], dtype=np.int64)
        meta["class_names"] = classes
        binary = len(classes) == 2
        out_units, out_act = (1, "sigmoid") if binary else (len(classes), "softmax")
        loss = args.loss or ("binary_crossentropy" if binary else "sparse_categorical_crossentropy")
        metrics = ["accuracy"]
        if binary:
            y = y.astype(np.float32)
    else:
        y = y_raw.astype(np.float32)
        out_units, out_act, loss, metrics = 1, "linear", args.loss or "mse", ["mae"]
    norm = layers.Normalization()
    norm.adapt(x)
    body = [fastmlp.Input((x.shape[1],), name="features"), norm]
    for s in sizes:
        body.append(layers.Dense(s, activation=args.activation))
        if args.dropout:
            body.append(layers.Dropout(float(args.dropout)))
    body.append(layers.Dense(out_units, activation=out_act, name=args.target if args.target.isidentifier()
                             else "output"))
    model = fastmlp.Sequential(body, name="table_model")
    model.compile(optimizer=fastmlp.optimizers.get({"class_name": args.optimizer,
                                                    "config": {"learning_rate": float(args.learning_rate)}}),
                  loss=loss, metrics=metrics)
    callbacks = []
    if args.early_stopping:
        monitor = "val_loss" if args.validation_split else "loss"
        callbacks.append(fastmlp.callbacks.EarlyStopping(monitor=monitor, patience=int(args.early_stopping),
                                                         restore_best_weights=True))
    verbose = 1 if sys.stderr.isatty() and not args.quiet else 0   # a progress bar on a terminal, quiet in pipes
    old_stdout = sys.stdout
    try:
        sys.stdout = sys.stderr   # progress goes to stderr: stdout stays clean for pipes
        history = model.fit(x, y, epochs=int(args.epochs), batch_size=int(args.batch_size),
                            validation_split=float(args.validation_split), callbacks=callbacks, verbose=verbose)
    finally:
        sys.stdout = old_stdout
    model._metadata = meta
    model.save(args.output)
    last = {k: float(v[-1]) for k, v in history.history.items()}
    summary = ", ".join(f"{k} {v:.4f}" for k, v in last.items())
    print(f"trained {task} model on {len(x)} rows x {len(names)} columns ({x.shape[1]} inputs), "
          f"{len(history.history['loss'])} epochs: {summary}; saved {args.output}")
    return 0


def _is_number_text(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def _sort_key(s):
    return float(s) if _is_number_text(s) else s


def _load(path):
    import fastmlp
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    try:
        return fastmlp.models.load_model(path)
    except fastmlp.FormatError as e:
        raise CLIError(str(e)) from None


def _model_inputs(model, table):
    meta = getattr(model, "_metadata", None) or {}
    if "columns" in meta:
        return encode(table, meta["columns"]), meta
    width = model._plan.input_widths[0] if len(model.inputs) == 1 else None
    if width is None:
        raise CLIError("this model has several inputs; the command line scores single-input models")
    names = [n for n in table.names if n not in (meta.get("target"), "y")]
    if len(names) != width:
        raise CLIError(f"the model takes {width} features; {table.source} has {len(names)} columns ({names}) "
                       f"besides the target")
    bad = [n for n in names if not table.numeric(n)]
    if bad:
        raise CLIError(f"column(s) {bad} are not numeric")
    x = np.column_stack([table.columns[n] for n in names]).astype(np.float32)
    if np.isnan(x).any():
        raise CLIError(f"{table.source} has missing values")
    return x, meta


def _text_columns(model):
    meta = getattr(model, "_metadata", None) or {}
    return [c["name"] for c in meta.get("columns", ()) if c.get("type") == "category"]


def cmd_predict(args):
    model = _load(args.model)
    _check_output(args.output, args.force)
    table = read_table(args.data, _text_columns(model))
    x, meta = _model_inputs(model, table)
    out = np.asarray(model.predict(x, verbose=0))
    target = meta.get("target", "prediction")
    classes = meta.get("class_names")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if classes is not None:
        proba = out if out.shape[1] > 1 else np.hstack([1 - out, out])
        labels = [classes[i] for i in proba.argmax(axis=1)]
        if args.proba:
            writer.writerow([target] + [f"p_{c}" for c in classes])
            for label, p in zip(labels, proba):
                writer.writerow([label] + [f"{v:.6g}" for v in p])
        else:
            writer.writerow([target])
            writer.writerows([label] for label in labels)
    else:
        if args.proba:
            raise CLIError("--proba is for classifiers; this model predicts numbers")
        cols = [target] if out.shape[1] == 1 else [f"{target}_{i}" for i in range(out.shape[1])]
        writer.writerow(cols)
        for row in out:
            writer.writerow([f"{v:.7g}" for v in row])
    text = buf.getvalue()
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        tmp = args.output + ".tmp"
        with open(tmp, "w", newline="") as fh:
            fh.write(text)
        os.replace(tmp, args.output)
        print(f"wrote {len(x)} predictions to {args.output}", file=sys.stderr)
    return 0


def cmd_evaluate(args):
    model = _load(args.model)
    table = read_table(args.data, _text_columns(model))
    meta = getattr(model, "_metadata", None) or {}
    target = args.target or meta.get("target") or ("y" if "y" in table.columns else None)
    if target is None or target not in table.columns:
        raise CLIError(f"{args.data} has no target column {target!r}; pass --target")
    x, meta = _model_inputs(model, table)
    y_raw = table.columns[target]
    classes = meta.get("class_names")
    if classes is not None:
        labels = y_raw if not table.numeric(target) else np.array([_num_text(v) for v in y_raw.tolist()])
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(labels.tolist()) - set(index))
        if unknown:
            raise CLIError(f"the target has class(es) {unknown[:5]} the model does not know ({classes})")
        y = np.array([index[v] for v in labels.tolist()])
        if len(classes) == 2:
            y = y.astype(np.float32)
    else:
        if not table.numeric(target):
            raise CLIError(f"the target {target!r} must be numbers for this model")
        y = y_raw.astype(np.float32)
    if not model.compiled:
        raise CLIError("the model file has no compile config (loss and metrics): it cannot be evaluated")
    results = model.evaluate(x, y, verbose=0, return_dict=True)
    results = {k: float(v) for k, v in results.items()}
    results["rows"] = len(x)
    if args.json:
        print(json.dumps(results))
    else:
        width = max(len(k) for k in results)
        print(f"{'metric':<{width}}  value")
        for k, v in results.items():
            print(f"{k:<{width}}  {v:.6g}" if k != "rows" else f"{k:<{width}}  {v}")
    return 0


def cmd_inspect(args):
    from fastmlp.saving import format as fmt
    from fastmlp.saving.reader import _read_file
    model = _load(args.model)
    buf = _read_file(args.model)
    p = fmt._parse(buf, len(buf), True)
    pre = fmt.PREAMBLE.unpack(bytes(memoryview(buf)[:fmt.PREAMBLE_SIZE]))
    info = {"file": args.model, "bytes": len(buf), "format_version": f"{pre[1]}.{pre[2]}",
            "model": model.name, "class": type(model).__name__, "parameters": int(model.count_params()),
            "inputs": [list(t.shape[1:]) for t in model.inputs],
            "outputs": [list(t.shape[1:]) for t in model.outputs],
            "compiled": bool(model.compiled), "training_state": p.training is not None,
            "checksums": {"header": f"{pre[8]:08x}", "weights": f"{pre[9]:08x}", "training": f"{pre[10]:08x}"},
            "tensors": [{"name": t[0], "dtype": t[1], "shape": list(t[2]), "bytes": t[4]} for t in p.tensors]}
    meta = getattr(model, "_metadata", None) or {}
    for key in ("target", "task", "feature_names", "class_names"):
        if key in meta:
            info[key] = meta[key]
    if args.json:
        print(json.dumps(info))
        return 0
    model.summary(print_fn=print)
    for key in ("file", "bytes", "format_version", "compiled", "training_state", "target", "task"):
        if key in info:
            print(f"{key}: {info[key]}")
    print("checksums (CRC-32C): " + ", ".join(f"{k} {v}" for k, v in info["checksums"].items()))
    if "feature_names" in info:
        print(f"feature names ({len(info['feature_names'])}): {', '.join(info['feature_names'])}")
    if "class_names" in info:
        print(f"class names: {', '.join(map(str, info['class_names']))}")
    print("tensors:")
    for t in info["tensors"]:
        print(f"  {t['name']:<40} {t['dtype']:<9} {str(tuple(t['shape'])):<14} {t['bytes']:>10,} bytes")
    return 0


def cmd_export(args):
    model = _load(args.model)
    fmt = args.format
    if fmt == "c":
        name = args.name or os.path.basename(os.path.normpath(args.output))
        info = model.export(args.output, format="c", name=name.replace("-", "_"), dtype=args.dtype or "float32",
                            overwrite=args.force, verbose=False)
        print(f"wrote {info['header']} and {info['source']} ({info['weight_bytes']:,} bytes of weights, "
              f"{info['scratch_floats']} scratch floats)")
        return 0
    _check_output(args.output, args.force)
    if fmt == "onnx":
        kw = {"dtype": args.dtype} if args.dtype else {}
        model.export(args.output, format="onnx", verbose=False, **kw)
    elif fmt == "keras":
        if not args.output.endswith((".keras", ".h5")):
            raise CLIError("--format keras writes a .keras or .h5 file: give -o a name ending in one of them")
        model.save(args.output)
    else:
        raise CLIError(f"--format must be c, onnx or keras; got {fmt!r}")
    print(f"wrote {args.output}")
    return 0


def cmd_serve(args):
    from fastmlp import serving
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.allow_remote:
        raise CLIError(f"--host {args.host} would accept connections from other machines; pass --allow-remote "
                       f"to mean it")
    if args.model_dir and args.models:
        raise CLIError("give model files or --model-dir, not both")
    if args.model_dir:
        models = args.model_dir
    elif args.models:
        models = {}
        for path in args.models:
            if not os.path.exists(path):
                raise CLIError(f"{path}: no such file")
            name = os.path.splitext(os.path.basename(path))[0]
            if name in models:
                raise CLIError(f"two models named {name!r}: rename one file")
            models[name] = path
    else:
        raise CLIError("give model files to serve, or --model-dir DIR")
    serving.serve(models, host=args.host, port=args.port, workers=args.workers, max_rows=args.max_rows,
                  max_body_bytes=args.max_body_bytes, poll_seconds=args.poll_seconds,
                  log_level="warning" if args.quiet else "info")
    return 0


# ---------------------------------------------------------------------- argument parsing
EXAMPLES = {
    "train": "examples:\n  fastmlp train iris.csv --target species --layers 64,32 --epochs 50 -o iris.fmlp\n"
             "  fastmlp train data.npz --target y --spec net.json -o model.fmlp",
    "evaluate": "examples:\n  fastmlp evaluate iris.fmlp test.csv\n  fastmlp evaluate iris.fmlp test.csv --json",
    "predict": "examples:\n  fastmlp predict iris.fmlp new.csv -o out.csv --proba\n"
               "  cat new.csv | fastmlp predict iris.fmlp - > out.csv",
    "inspect": "examples:\n  fastmlp inspect iris.fmlp\n  fastmlp inspect iris.fmlp --json",
    "export": "examples:\n  fastmlp export iris.fmlp --format c -o iris_c --name iris\n"
              "  fastmlp export iris.fmlp --format onnx -o iris.onnx",
    "serve": "examples:\n  fastmlp serve iris.fmlp fraud.fmlp --port 8501\n"
             "  fastmlp serve --model-dir models/ --workers 2\n"
             "  curl -d '{\"instances\": [[5.1, 3.5, 1.4, 0.2]]}' localhost:8501/v1/models/iris:predict",
}


def build_parser():
    parser = argparse.ArgumentParser(prog="fastmlp", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_):
        return sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES.get(name),
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    t = add("train", "train a network on a data file and save it")
    t.add_argument("data", help="CSV with a header row, .npz (x, y) or - for CSV on stdin")
    t.add_argument("--target", required=True, help="the column to predict")
    t.add_argument("--features", help="comma-separated feature columns (default: all but the target)")
    t.add_argument("--ignore", help="comma-separated columns to leave out")
    t.add_argument("--layers", help="hidden layer sizes, e.g. 64,32 (default 64,32; '' for none)")
    t.add_argument("--activation", help="hidden activation (default relu)")
    t.add_argument("--dropout", type=float, help="dropout rate after each hidden layer (default 0)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--learning-rate", type=float)
    t.add_argument("--optimizer", help="adam, sgd, rmsprop, ... (default adam)")
    t.add_argument("--loss", help="default: from the target (cross-entropy or mse)")
    t.add_argument("--validation-split", type=float)
    t.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement, keeping the best weights")
    t.add_argument("--task", choices=["auto", "classification", "regression"])
    t.add_argument("--fill", help="missing values: mean, zero or a number (default: an error)")
    t.add_argument("--spec", help="a JSON or TOML file with any of these options (flags win)")
    t.add_argument("--seed", type=int)
    t.add_argument("-o", "--output", required=True, help="the model file to write (.fmlp)")
    t.add_argument("--force", action="store_true", help="overwrite an existing output file")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=cmd_train)

    e = add("evaluate", "evaluate a model on a labelled data file")
    e.add_argument("model")
    e.add_argument("data")
    e.add_argument("--target", help="the label column (default: the one the model was trained on)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_evaluate)

    p = add("predict", "write a model's predictions for a data file")
    p.add_argument("model")
    p.add_argument("data", help="CSV (columns matched by name), .npy/.npz, or - for stdin")
    p.add_argument("-o", "--output", help="CSV file to write (default, or -, standard output)")
    p.add_argument("--proba", action="store_true", help="also write class probabilities")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.set_defaults(func=cmd_predict)

    i = add("inspect", "describe a model file")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    x = add("export", "export a model as standalone C, ONNX or a Keras file")
    x.add_argument("model")
    x.add_argument("--format", required=True, choices=["c", "onnx", "keras"])
    x.add_argument("-o", "--output", required=True, help="a folder for C; a file for onnx/keras")
    x.add_argument("--name", help="C: the function and file prefix (default: the folder's name)")
    x.add_argument("--dtype", choices=["float32", "int8"], help="weights of the exported model")
    x.add_argument("--force", action="store_true", help="overwrite existing output")
    x.set_defaults(func=cmd_export)

    s = add("serve", "serve models over HTTP (TF Serving REST v1, Open Inference Protocol v2)")
    s.add_argument("models", nargs="*", help="model files, served under their file names")
    s.add_argument("--model-dir", help="a folder of <name>/<version>/model.fmlp (new versions picked up live)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--allow-remote", action="store_true", help="allow a --host other than loopback")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--max-rows", type=int, default=100_000)
    s.add_argument("--max-body-bytes", type=int, default=16 << 20)
    s.add_argument("--poll-seconds", type=float, default=2.0)
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=cmd_serve)
    return parser, sub


def run(parser, args):
    try:
        return args.func(args)
    except CLIError as e:
        print(f"fastmlp {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as e:
        print(f"fastmlp {args.command}: error: {e}", file=sys.stderr)
        return 1
