"""``TensorBoard``: event files TensorBoard reads, laid out as Keras 3 writes them.

``log_dir/train`` and ``log_dir/validation`` each get an event file; the
summaries are TensorFlow 2's (scalars as float32 tensors, histograms as
``[bucket, 3]`` float64 tensors, images as PNG strings), written by the
``tensorboard`` package's writer and summary helpers, so TensorFlow is not
needed.  Tags as in Keras: ``epoch_loss``, ``epoch_accuracy``,
``epoch_learning_rate`` (the ``val_`` logs go to ``validation/`` without the
prefix), ``batch_*`` at ``update_freq``, ``evaluation_*_vs_iterations`` after
each evaluation, ``<layer>/<weight>/histogram`` and ``/image``, and the model's
config under ``keras`` for the graph dashboard.
"""
import os
import struct
import time
import zlib

import numpy as np

from ._callback import Callback

__all__ = ["TensorBoard"]


def _import_tensorboard():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.histogram import summary_v2 as histogram
        from tensorboard.plugins.scalar import summary_v2 as scalar
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise ImportError("The TensorBoard callback needs the `tensorboard` package: "
                          "pip install fastmlp[tensorboard]") from e
    return event_pb2, summary_pb2, histogram, scalar, EventFileWriter


def _png(pixels):
    """A grayscale PNG (8-bit) of a 2-D uint8 array."""
    h, w = pixels.shape
    raw = b"".join(b"\x00" + pixels[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _weight_image(value):
    """Keras's picture of a weight: a bias as a column, a kernel with its longer axis
    across (rows = the smaller dimension); values clipped to [0, 1] as uint8.  None
    for weights with no 1-D or 2-D picture."""
    w = np.squeeze(np.asarray(value, dtype=np.float64))
    if w.ndim == 1:
        w = w.reshape(w.shape[0], 1)
    elif w.ndim == 2:
        if w.shape[0] > w.shape[1]:
            w = w.T
    else:
        return None
    return np.floor(np.clip(w, 0.0, 1.0) * 255.5).astype(np.uint8)   # TF's convert_image_dtype


class TensorBoard(Callback):
    """Write logs for TensorBoard (``tensorboard --logdir logs``), as Keras 3 does.

    Parameters
    ----------
    log_dir : str or path
        Where the ``train`` and ``validation`` folders of event files go.
    histogram_freq : int
        Every this many epochs, a histogram of every weight (0: never).
    write_graph : bool
        Write the model's config, which TensorBoard's graph dashboard draws.
    write_images : bool
        With the histograms, each weight as a grayscale image.
    write_steps_per_second : bool
        Also log training steps per second (per epoch, and per batch with ``update_freq``).
    update_freq : "epoch", "batch" or int
        Log the batch-level logs every ``update_freq`` batches (``fit`` then returns
        to Python after every batch) or only per epoch.
    profile_batch, embeddings_freq, embeddings_metadata
        Keras's profiler and embedding projector: not supported (only their
        defaults are accepted).
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        _import_tensorboard()
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ValueError(f"`log_dir` must be a non-empty path. Received: log_dir={log_dir!r}")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, (int, np.integer)) \
                or histogram_freq < 0:
            raise ValueError(f"`histogram_freq` must be a non-negative integer. "
                             f"Received: histogram_freq={histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, (int, np.integer))
                                       or update_freq <= 0):
            raise ValueError(f"`update_freq` must be 'epoch', 'batch' or a positive integer. "
                             f"Received: update_freq={update_freq!r}")
        if profile_batch not in (0, None, "0"):
            raise ValueError(f"Profiling is not available in fastmlp. Received: profile_batch={profile_batch!r} "
                             f"(must be 0)")
        if embeddings_freq:
            raise ValueError(f"fastmlp has no embedding layers to project: `embeddings_freq` must be 0. "
                             f"Received: embeddings_freq={embeddings_freq!r}")
        if embeddings_metadata is not None:
            raise ValueError("`embeddings_metadata` is not supported by fastmlp (it has no embedding layers). "
                             f"Received: embeddings_metadata={embeddings_metadata!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = int(histogram_freq)
        self.write_graph = bool(write_graph)
        self.write_images = bool(write_images)
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = update_freq if update_freq == "epoch" else int(update_freq)
        self._writers = {}
        self._global_train_batch = 0
        self._global_test_batch = 0
        self._batch_start = 0.0
        self._epoch_start = 0.0
        self._epoch_iterations = 0

    def _overrides(self, hook):
        # batch hooks (one engine call per batch) only when batches are logged
        if hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin"):
            return self.update_freq != "epoch"
        return super()._overrides(hook)

    # ------------------------------------------------------------------ writing
    def _writer(self, which):
        if which not in self._writers:
            writer_class = _import_tensorboard()[4]
            folder = os.path.join(self.log_dir, "train" if which == "train" else "validation")
            os.makedirs(folder, exist_ok=True)
            self._writers[which] = writer_class(folder, filename_suffix=".v2")
        return self._writers[which]

    def _write(self, which, summary, step):
        event_pb2 = _import_tensorboard()[0]
        self._writer(which).add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def _scalars(self, which, values, step):
        scalar = _import_tensorboard()[3]
        summary = _import_tensorboard()[1].Summary()
        for name, value in values.items():
            summary.value.extend(scalar.scalar_pb(name, np.float32(value)).value)
        if summary.value:
            self._write(which, summary, step)

    def _close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def set_model(self, model):
        super().set_model(model)
        self._close()
        if self.write_graph and model is not None and getattr(model, "built", False):
            _, summary_pb2, _, _, _ = _import_tensorboard()
            meta = summary_pb2.SummaryMetadata()
            meta.plugin_data.plugin_name = "graph_keras_model"
            meta.plugin_data.content = b"1"
            from tensorboard.compat.proto import tensor_pb2, types_pb2
            tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[model.to_json().encode()])
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="keras", tensor=tensor,
                                                                           metadata=meta)])
            self._write("train", summary, 0)
            self._writer("train").flush()

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_end(self, logs=None):
        self._close()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_iterations = int(self.model.optimizer.iterations)
        self._epoch_start = time.time()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._batch_start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        step = self._global_train_batch
        if self.update_freq == "epoch" or step % self.update_freq:
            return
        values = {}
        if self.write_steps_per_second:
            values["batch_steps_per_second"] = 1.0 / max(time.time() - self._batch_start, 1e-9)
        values.update({f"batch_{k}": v for k, v in (logs or {}).items()})
        self._scalars("train", values, step)

    def on_test_batch_begin(self, batch, logs=None):
        self._global_test_batch += 1

    def on_test_end(self, logs=None):
        if self.update_freq != "epoch" and self._global_test_batch % self.update_freq:
            return
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            return
        self._scalars("validation", {f"evaluation_{k}_vs_iterations": v for k, v in (logs or {}).items()},
                      opt.iterations)
        self._writer("validation").flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if logs:
            train = {k: v for k, v in logs.items() if not k.startswith("val_")}
            val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
            train["learning_rate"] = float(self.model.optimizer.learning_rate)
            if self.write_steps_per_second:
                took = self.model.optimizer.iterations - self._epoch_iterations
                train["steps_per_second"] = took / max(time.time() - self._epoch_start, 1e-9)
            self._scalars("train", {f"epoch_{k}": v for k, v in train.items()}, epoch)
            if val:
                self._scalars("validation", {f"epoch_{k}": v for k, v in val.items()}, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch):
        _, summary_pb2, histogram, _, _ = _import_tensorboard()
        summary = summary_pb2.Summary()
        model = self.model
        for ref in model._plan.weights:
            value = np.asarray(getattr(ref.layer, ref.spec.name))
            name = ref.name.replace(":", "_")
            summary.value.extend(histogram.histogram_pb(f"{name}/histogram", value.astype(np.float64)).value)
            if self.write_images:
                pixels = _weight_image(value)
                if pixels is not None:
                    summary.value.append(self._image_value(f"{name}/image", pixels))
        self._write("train", summary, epoch)

    @staticmethod
    def _image_value(tag, pixels):
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.plugins.image import metadata
        _, summary_pb2, _, _, _ = _import_tensorboard()
        h, w = pixels.shape
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[str(w).encode(), str(h).encode(), _png(pixels)],
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=3)]))
        meta = metadata.create_summary_metadata(display_name=None, description=None)
        return summary_pb2.Summary.Value(tag=tag, tensor=tensor, metadata=meta)
