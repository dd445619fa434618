"""Sequence models for the quantization and export tests."""

from torch import nn


class SequenceClassifier(nn.Module):
    """Token embedding -> self-attention -> LSTM -> GRU -> head: every layer kind at once."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 16)
        self.attention = nn.MultiheadAttention(16, 4, batch_first=True)
        self.lstm = nn.LSTM(16, 12, batch_first=True, bidirectional=True)
        self.gru = nn.GRU(24, 12, batch_first=True)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        h = self.embed(x)
        h = h + self.attention(h, h, h, need_weights=False)[0]
        h = self.gru(self.lstm(h)[0])[0]
        return self.head(h[:, -1])
