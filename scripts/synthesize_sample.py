"""Rebuild sample_data/ from the sentence lists below with espeak-ng.

The WAVs are committed so installing kimi-tui never needs espeak-ng; run this
only to change the sample. It mirrors the seed report's layout: nine training
clips in audio/ with split_lingyin_audio_test.csv (id, transcript) and ten test
clips in test_audio/ with split_lingyin_audio_answer.csv (id, answer).

`-v cmn-latn-pinyin` speaks Mandarin from Chinese characters (`-v cmn` reads
them as something else), at 22.05 kHz; clips are resampled to 16 kHz mono
16-bit PCM, the format the Kimi-Audio and Whisper front ends expect.

Usage: python scripts/synthesize_sample.py [--out sample_data]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import tempfile
from pathlib import Path

TRAIN = [
    "今天天气很好",
    "我们一起去公园散步",
    "请把窗户打开",
    "这本书非常有意思",
    "明天早上八点开会",
    "他喜欢喝绿茶",
    "火车马上就要出发了",
    "妈妈在厨房做饭",
    "我想学习中文",
]

TEST = [
    "今天我们去开会",
    "请把书打开",
    "他在公园喝茶",
    "明天天气很好",
    "妈妈喜欢学习中文",
    "火车早上八点出发",
    "这个窗户非常大",
    "我想去厨房",
    "我们一起做饭",
    "他要去散步",
]


def synthesize(text: str, out: Path) -> None:
    import numpy as np
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(
            ["espeak-ng", "-v", "cmn-latn-pinyin", "-s", "150", "-w", str(raw), text],
            check=True,
        )
        audio, rate = sf.read(raw, dtype="float32", always_2d=True)
    mono = torch.from_numpy(audio.mean(axis=1))
    resampled = AF.resample(mono, rate, 16000).numpy()
    peak = float(np.abs(resampled).max()) or 1.0
    sf.write(out, resampled / peak * 0.9, 16000, subtype="PCM_16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "sample_data")
    args = parser.parse_args()
    for split, sentences, folder, csv_name, text_header in (
        ("train", TRAIN, "audio", "split_lingyin_audio_test.csv", "text"),
        ("test", TEST, "test_audio", "split_lingyin_audio_answer.csv", "answer"),
    ):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
        rows = []
        for i, sentence in enumerate(sentences, 1):
            utt_id = f"lingyin_{split}_{i:03d}"
            synthesize(sentence, args.out / folder / f"{utt_id}.wav")
            rows.append((utt_id, sentence))
        with open(args.out / csv_name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", text_header])
            writer.writerows(rows)
        print(f"{split}: {len(rows)} clips in {args.out / folder}")


if __name__ == "__main__":
    main()
