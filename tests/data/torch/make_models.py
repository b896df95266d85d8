"""Writes the small PyTorch models that tests/test_onnx_import.py imports:
PyTorch's own ONNX export (the TorchScript exporter, opset 17, a dynamic
batch), so the tests see the forms PyTorch writes without needing torch.

    python tests/data/torch/make_models.py      (needs torch; run from the repository root)
"""
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).parent


class Cnn(nn.Module):                       # x.view(x.size(0), -1): a reshape computed from shapes
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8 * 2 * 2, 3)

    def forward(self, x):
        x = self.features(x)
        return torch.softmax(self.head(x.view(x.size(0), -1)), dim=1)


class Text(nn.Module):                      # the last state h_n[-1] of a GRU
    def __init__(self):
        super().__init__()
        self.embed, self.gru = nn.Embedding(10, 4), nn.GRU(4, 6, batch_first=True)
        self.norm, self.head = nn.LayerNorm(6), nn.Linear(6, 2)

    def forward(self, tokens):
        _, h = self.gru(self.embed(tokens))
        return self.head(self.norm(h[-1]))


class Stacked(nn.Module):                   # a two-layer LSTM, then a bidirectional GRU, out[:, -1]
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, num_layers=2, batch_first=True)
        self.gru = nn.GRU(5, 4, batch_first=True, bidirectional=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        y, _ = self.lstm(x)
        y, _ = self.gru(y)
        return self.head(y[:, -1])


MODELS = {
    "mlp": (nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3), nn.Softmax(dim=1)),
            torch.randn(2, 4)),
    "cnn": (Cnn(), torch.randn(2, 1, 8, 8)),
    "text": (Text(), torch.randint(0, 10, (2, 7))),
    "stacked": (Stacked(), torch.randn(2, 6, 3)),
    "gelu_tanh": (nn.Sequential(nn.Linear(4, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 2)), torch.randn(2, 4)),
    "gelu_erf": (nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)), torch.randn(2, 4)),
}

if __name__ == "__main__":
    torch.manual_seed(0)
    for name, (model, x) in MODELS.items():
        model.eval()
        torch.onnx.export(model, x, HERE / f"{name}.onnx", dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}})
        print("wrote", HERE / f"{name}.onnx")
