"""LiteRT (TensorFlow Lite) interpreters for the MediaPipe models of the ID-photo checks. No Airflow import."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np


class LiteRTRunner:
    """One LiteRT interpreter; invocations are serialised (an interpreter is not thread-safe)."""

    def __init__(self, path: str) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=path, num_threads=1)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]
        self.lock = threading.Lock()

    def __call__(self, tensor: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            self.interpreter.set_tensor(self.input, tensor[None].astype(np.float32))
            self.interpreter.invoke()
            return [self.interpreter.get_tensor(i).copy() for i in self.outputs]


@lru_cache(maxsize=16)
def runner(path: str) -> LiteRTRunner:
    """One interpreter per model file for the whole process."""
    return LiteRTRunner(path)
