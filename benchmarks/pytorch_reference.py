"""PyTorch reference for TransformerBenchmark: the same models at the same shapes, timed the same way.

Two models (--model):
  transformer  the sample post-LayerNorm encoder: batch 16, sequence 64, hidden 256, 4 heads,
               4 layers, FFN 1024, a 1,000-token vocabulary and 1,000 classes per token
               (cross-entropy over every position).
  minilm       all-MiniLM-L6-v2's architecture (BERT: 6 layers, hidden 384, 12 heads, FFN 1536,
               30,522-token vocabulary, LayerNorm epsilon 1e-12) with mean pooling, L2
               normalisation and a 2-class classifier: batch 16, sequence 128. The weights are
               random (speed does not depend on them); the embeddings stay frozen in full
               fine-tuning, as in the Java sample.
  gpt          generation only: the byte-level GPT sample (GptConfig.small(): 257-token vocabulary,
               context 128, hidden 256, 4 heads, 4 pre-LayerNorm blocks, FFN 1024, tied output
               projection), random weights, batch 1; an 8-byte prompt, then greedy decoding to 128
               positions, once with a key/value cache and once recomputing the whole sequence for
               every token. Reports tokens per second.
Adam at 1e-4. LoRA is applied as Hugging Face PEFT applies it (lora_A kaiming-uniform with
a = sqrt(5), lora_B zero, scale alpha / r = 16 / 8, on query and value, base frozen); for minilm
the classifier trains too. Prints one JSON object with medians and ranges in milliseconds.

Run: python3 benchmarks/pytorch_reference.py [--model transformer] [--threads 1]
     (Debian: apt-get install python3-torch libopenblas0-pthread)
"""
import argparse
import json
import math
import os
import statistics
import time
from dataclasses import dataclass


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["transformer", "minilm", "gpt"], default="transformer")
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


ARGS = parse_args()
# torch.set_num_threads sizes only PyTorch's own pool. Debian's torch calls the system OpenBLAS,
# whose pthread build starts one thread per core when it loads unless told otherwise: without
# these, a "1-thread" run multiplied matrices on every core (454 GFLOP/s single-GEMM on 2 cores).
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import torch  # noqa: E402  (after the thread variables, which OpenBLAS reads when it loads)
from torch import nn  # noqa: E402

WARMUP, REPEATS = 3, 20


@dataclass(frozen=True)
class Shapes:
    batch: int
    seq: int
    hidden: int
    heads: int
    layers: int
    ffn: int
    vocab: int
    classes: int
    eps: float


TRANSFORMER = Shapes(batch=16, seq=64, hidden=256, heads=4, layers=4, ffn=1024, vocab=1000, classes=1000, eps=1e-12)
MINILM = Shapes(batch=16, seq=128, hidden=384, heads=12, layers=6, ffn=1536, vocab=30522, classes=2, eps=1e-12)


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
    def __init__(self, s: Shapes):
        super().__init__()
        self.heads = s.heads
        self.query, self.key, self.value, self.output = (nn.Linear(s.hidden, s.hidden) for _ in range(4))

    def forward(self, x, additive_mask=None):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        if additive_mask is not None:
            scores = scores + additive_mask
        weights = torch.softmax(scores, dim=-1)
        return self.output((weights @ v).transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    """Post-LayerNorm: LN(x + attention(x)), then LN(h + FFN(h)) with GELU."""

    def __init__(self, s: Shapes):
        super().__init__()
        self.attention = SelfAttention(s)
        self.attention_norm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.up, self.down = nn.Linear(s.hidden, s.ffn), nn.Linear(s.ffn, s.hidden)
        self.output_norm = nn.LayerNorm(s.hidden, eps=s.eps)

    def forward(self, x, additive_mask=None):
        h = self.attention_norm(x + self.attention(x, additive_mask))
        return self.output_norm(h + self.down(nn.functional.gelu(self.up(h))))


class TokenClassifier(nn.Module):
    def __init__(self, s: Shapes):
        super().__init__()
        self.tokens = nn.Embedding(s.vocab, s.hidden)
        self.positions = nn.Parameter(torch.randn(s.seq, s.hidden) * 0.1)
        self.layers = nn.ModuleList(EncoderLayer(s) for _ in range(s.layers))
        self.classifier = nn.Linear(s.hidden, s.classes)

    def forward(self, tokens, mask):
        h = self.tokens(tokens) + self.positions
        for layer in self.layers:
            h = layer(h)
        return self.classifier(h)


class SentenceClassifier(nn.Module):
    """BERT embeddings and encoder, mean pooling over the mask, L2 normalisation, a linear classifier."""

    def __init__(self, s: Shapes):
        super().__init__()
        self.words = nn.Embedding(s.vocab, s.hidden)
        self.positions = nn.Embedding(512, s.hidden)
        self.types = nn.Embedding(2, s.hidden)
        self.embedding_norm = nn.LayerNorm(s.hidden, eps=s.eps)
        self.layers = nn.ModuleList(EncoderLayer(s) for _ in range(s.layers))
        self.classifier = nn.Linear(s.hidden, s.classes)

    def embedding_parameters(self):
        return [*self.words.parameters(), *self.positions.parameters(), *self.types.parameters(),
                *self.embedding_norm.parameters()]

    def forward(self, tokens, mask):
        positions = torch.arange(tokens.shape[1]).unsqueeze(0)
        h = self.embedding_norm(self.words(tokens) + self.positions(positions) + self.types(torch.zeros_like(tokens)))
        additive = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in self.layers:
            h = layer(h, additive)
        pooled = (h * mask.unsqueeze(2)).sum(1) / mask.sum(1, keepdim=True)
        return self.classifier(pooled / pooled.norm(dim=1, keepdim=True))


def build(model, s: Shapes):
    return TokenClassifier(s) if model == "transformer" else SentenceClassifier(s)


def full_fine_tuning(model, net):
    if model == "minilm":
        for parameter in net.embedding_parameters():
            parameter.requires_grad_(False)
    return net


def add_lora(model, net):
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    for layer in net.layers:
        layer.attention.query = LoraLinear(layer.attention.query)
        layer.attention.value = LoraLinear(layer.attention.value)
    if model == "minilm":
        for parameter in net.classifier.parameters():
            parameter.requires_grad_(True)
    return net


def summary(seconds):
    ms = sorted(s * 1e3 for s in seconds)
    return {"median": statistics.median(ms), "min": ms[0], "max": ms[-1]}


def time_training(net, tokens, mask, targets, classes):
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    seconds = []
    for step in range(WARMUP + REPEATS):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(net(tokens, mask).reshape(-1, classes), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        if step >= WARMUP:
            seconds.append(time.perf_counter() - start)
    return summary(seconds)


def time_forward(net, tokens, mask):
    seconds = []
    with torch.no_grad():
        for step in range(WARMUP + REPEATS):
            start = time.perf_counter()
            net(tokens, mask)
            if step >= WARMUP:
                seconds.append(time.perf_counter() - start)
    return summary(seconds)


def gemm_peak_gflops(n=2048):
    """GFLOP/s of torch.mm for n x n fp32 matrices into a preallocated output (median of 5), as the Java side measures."""
    a, b, c = torch.rand(n, n), torch.rand(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        seconds.append(time.perf_counter() - start)
    return 2.0 * n ** 3 / statistics.median(seconds) / 1e9


class CausalSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.d = heads, d
        self.query, self.key, self.value, self.output = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, past=None):
        b, t, d = x.shape
        k, v = self.key(x), self.value(x)
        if past is not None:
            k, v = torch.cat([past[0], k], 1), torch.cat([past[1], v], 1)
        split = lambda y: y.reshape(b, y.shape[1], self.heads, d // self.heads).transpose(1, 2)
        scores = split(self.query(x)) @ split(k).transpose(2, 3) / math.sqrt(d // self.heads)
        tk = k.shape[1]
        visible = torch.ones(t, tk, dtype=torch.bool).tril(tk - t)
        weights = scores.masked_fill(~visible, -1e9).softmax(-1)
        return self.output((weights @ split(v)).transpose(1, 2).reshape(b, t, d)), (k, v)


class DecoderBlock(nn.Module):
    def __init__(self, d, heads, ffn):
        super().__init__()
        self.attention_norm, self.feed_forward_norm = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
        self.attention = CausalSelfAttention(d, heads)
        self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x, past=None):
        attended, present = self.attention(self.attention_norm(x), past)
        h = x + attended
        return h + self.down(nn.functional.gelu(self.up(self.feed_forward_norm(h)))), present


class Gpt(nn.Module):
    """The GPT sample's architecture: token + position embeddings, pre-LN blocks, tied output projection."""

    def __init__(self, vocab=257, context=128, d=256, heads=4, layers=4, ffn=1024):
        super().__init__()
        self.tokens, self.positions = nn.Parameter(torch.randn(vocab, d) * 0.02), nn.Parameter(torch.randn(context, d) * 0.01)
        self.blocks = nn.ModuleList(DecoderBlock(d, heads, ffn) for _ in range(layers))
        self.final_norm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, tokens, start, past=None):
        h = self.tokens[tokens] + self.positions[start:start + tokens.shape[1]]
        present = []
        for i, block in enumerate(self.blocks):
            h, kv = block(h, None if past is None else past[i])
            present.append(kv)
        return self.final_norm(h) @ self.tokens.t(), present


def time_generation(net, prompt, length, cached):
    """Seconds to extend prompt [1, P] greedily to length positions, with or without the key/value cache."""
    with torch.no_grad():
        start = time.perf_counter()
        tokens = prompt
        if cached:
            logits, past = net(tokens, 0)
            while tokens.shape[1] < length:
                token = logits[:, -1:].argmax(-1)
                tokens = torch.cat([tokens, token], 1)
                if tokens.shape[1] < length:
                    logits, past = net(token, tokens.shape[1] - 1, past)
        else:
            while tokens.shape[1] < length:
                logits, _ = net(tokens, 0)
                tokens = torch.cat([tokens, logits[:, -1:].argmax(-1)], 1)
        return time.perf_counter() - start, tokens


def generation(threads):
    torch.manual_seed(7)
    net = Gpt().eval()
    prompt = torch.tensor([[ord(c) for c in "The spam"]])
    result = {"torch": torch.__version__, "model": "gpt", "threads": torch.get_num_threads(), "gemm_gflops": gemm_peak_gflops()}
    for cached in (True, False):
        runs = [time_generation(net, prompt, 128, cached) for _ in range(4)][1:]
        generated = 128 - prompt.shape[1]
        rates = sorted(generated / seconds for seconds, _ in runs)
        result["cached_tokens_per_s" if cached else "recompute_tokens_per_s"] = {"median": statistics.median(rates), "min": rates[0], "max": rates[-1]}
    return result


def main():
    args = ARGS
    if args.model == "gpt":
        torch.set_num_threads(args.threads)
        print(json.dumps(generation(args.threads)))
        return
    s = TRANSFORMER if args.model == "transformer" else MINILM
    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    tokens = torch.randint(0, s.vocab, (s.batch, s.seq))
    mask = torch.ones(s.batch, s.seq)
    targets = torch.randint(0, s.classes, (s.batch, s.seq) if args.model == "transformer" else (s.batch,))
    result = {
        "torch": torch.__version__,
        "model": args.model,
        "threads": torch.get_num_threads(),
        "gemm_gflops": gemm_peak_gflops(),
        "full_step_ms": time_training(full_fine_tuning(args.model, build(args.model, s)), tokens, mask, targets, s.classes),
        "lora_step_ms": time_training(add_lora(args.model, build(args.model, s)), tokens, mask, targets, s.classes),
        "forward_ms": time_forward(build(args.model, s).eval(), tokens, mask),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
