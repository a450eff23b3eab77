"""PyTorch reference for TransformerBenchmark: the same post-LayerNorm encoder at the same shapes.

Batch 16, sequence 64, hidden 256, 4 heads, 4 layers, FFN 1024, a 1,000-token vocabulary and
1,000 classes per token; Adam at 1e-4; LoRA applied as Hugging Face PEFT applies it (lora_A
kaiming-uniform with a = sqrt(5), lora_B zero, scale alpha / r = 16 / 8, on query and value, base
frozen). Prints one JSON object with medians and ranges in milliseconds.

Run: python3 benchmarks/pytorch_reference.py [--threads 2]   (Debian: apt-get install python3-torch)
"""
import argparse
import json
import math
import statistics
import time

import torch
from torch import nn

BATCH, SEQ, HIDDEN, HEADS, LAYERS, FFN, VOCAB, CLASSES = 16, 64, 256, 4, 4, 1024, 1000, 1000
WARMUP, REPEATS = 3, 20


class LoraLinear(nn.Module):
    """y = x W + b + x A B (alpha / r), as PEFT's lora.Linear with dropout 0."""

    def __init__(self, base: nn.Linear, rank=8, alpha=16):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value, self.output = (nn.Linear(HIDDEN, HIDDEN) for _ in range(4))

    def forward(self, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, HEADS, d // HEADS).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // HEADS), dim=-1)
        return self.output((weights @ v).transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = SelfAttention()
        self.attention_norm = nn.LayerNorm(HIDDEN)
        self.up, self.down = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN)
        self.output_norm = nn.LayerNorm(HIDDEN)

    def forward(self, x):
        h = self.attention_norm(x + self.attention(x))
        return self.output_norm(h + self.down(nn.functional.gelu(self.up(h))))


class TokenClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, HIDDEN)
        self.positions = nn.Parameter(torch.randn(SEQ, HIDDEN) * 0.1)
        self.layers = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
        self.classifier = nn.Linear(HIDDEN, CLASSES)

    def forward(self, tokens):
        h = self.tokens(tokens) + self.positions
        for layer in self.layers:
            h = layer(h)
        return self.classifier(h)


def add_lora(model):
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for layer in model.layers:
        layer.attention.query = LoraLinear(layer.attention.query)
        layer.attention.value = LoraLinear(layer.attention.value)
    return model


def summary(seconds):
    ms = sorted(s * 1e3 for s in seconds)
    return {"median": statistics.median(ms), "min": ms[0], "max": ms[-1]}


def time_training(model, tokens, targets):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    seconds = []
    for step in range(WARMUP + REPEATS):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(tokens).reshape(-1, CLASSES), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        if step >= WARMUP:
            seconds.append(time.perf_counter() - start)
    return summary(seconds)


def time_forward(model, tokens):
    seconds = []
    with torch.no_grad():
        for step in range(WARMUP + REPEATS):
            start = time.perf_counter()
            model(tokens)
            if step >= WARMUP:
                seconds.append(time.perf_counter() - start)
    return summary(seconds)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQ))
    targets = torch.randint(0, CLASSES, (BATCH, SEQ))
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "full_step_ms": time_training(TokenClassifier(), tokens, targets),
        "lora_step_ms": time_training(add_lora(TokenClassifier()), tokens, targets),
        "forward_ms": time_forward(TokenClassifier().eval(), tokens),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
