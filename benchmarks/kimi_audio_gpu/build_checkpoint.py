"""Build random-initialised model folders of the real Kimi-Audio-7B architecture with the official classes.

Usage (under the official code's interpreter, e.g. the wrapper run_stages.py writes):
    python build_checkpoint.py --size full|tiny --checkout CHECKOUT --out DIR [--texts FILE] [--device auto]

Writes, nothing downloaded:
    DIR/Kimi-Audio-7B/              the LM (finetune_codes.modeling_kimia.MoonshotKimiaForCausalLM with its
                                    MIMO layers, KimiAudioConfig), config.json with auto_map, the modelling
                                    .py files copied from the checkout (as the official export does), the
                                    test bed's own tokenizer (tokenization_kimia.py + a generated
                                    tiktoken.model, tokenizer_config.json, special_tokens_map.json) and
                                    whisper-large-v3/ (kimia_infer's WhisperModel, encoder + decoder);
    DIR/glm-4-voice-tokenizer/      the GLM-4-Voice speech tokenizer's WhisperVQEncoder + WhisperVQConfig and
                                    a WhisperFeatureExtractor preprocessor_config.json;
    DIR/build_report.json           parameter counts, bytes on disk, seconds.

--size full uses the published configuration values (sources next to each table below) and checks the
LM at 9,766,334,464 parameters and the Whisper encoder at 636,968,960. --size tiny keeps the same classes
and the real vocabulary (168,448) and kimia_token_offset (152,064), so token ids stay valid, with tiny
widths and depths, for CPU dry runs. On a GPU the weights are built there in bf16 with the constructors'
own initialisation skipped and one cheap normal(0, 0.02) pass instead (a 10 B model in seconds), then
saved as safetensors. Nothing here is the official code: the checkout's classes are imported from
--checkout at run time, and its two modelling files are copied into the output folder at run time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --- Kimi-Audio-7B's LM: the hub's config.json of moonshotai/Kimi-Audio-7B (values as quoted in
#     /work/shared/KIMI_AUDIO.md "The full-size architecture" and in two public copies of that config.json
#     read with the code-search tool: hidden 3584, intermediate 18944, 28 layers, 28 heads, 4 KV heads,
#     max_position_embeddings 8192, rms_norm_eps 1e-6, vocab 168448, 6 MIMO layers from layer 21, audio
#     vocab 16896, text vocab 152064, kimia_token_offset 152064, audio delay 6 tokens, adaptor input 5120,
#     torch_dtype bfloat16). rope_theta 1e6 is Qwen2-7B's, the LM's starting point (KIMI_AUDIO.md). The
#     special-token ids (media begin/end 151661/151663, 151643 base tokens, 512 audio specials) are the
#     configuration class's defaults, which agree with the published tokenizer's layout.
LM_FULL = dict(
    vocab_size=168448, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
    num_attention_heads=28, num_key_value_heads=4, hidden_act="silu", max_position_embeddings=8192,
    initializer_range=0.02, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
    kimia_mimo_layers=6, kimia_mimo_transformer_from_layer_index=21, kimia_mimo_audiodelaytokens=6,
    kimia_audio_output_vocab=16896, kimia_text_output_vocab=152064, num_audio_special_tokens=512,
    num_base_tokens=151643, kimia_token_offset=152064, use_whisper_feature=True,
    kimia_adaptor_input_dim=5120, kimia_media_begin=151661, kimia_media_end=151663,
)
LM_TINY = dict(LM_FULL, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
               num_key_value_heads=2, kimia_mimo_layers=2, kimia_mimo_transformer_from_layer_index=2,
               kimia_adaptor_input_dim=4 * 32)  # 4 x the tiny Whisper's d_model, as 5120 = 4 x 1280

# --- whisper-large-v3: the hub's config.json of openai/whisper-large-v3 (d_model 1280, 32 encoder and 32
#     decoder layers, 20 heads, FFN 5120, 128 mel bins, vocab 51866, 1500 source / 448 target positions,
#     special ids 50256/50257/50258; the same values appear in public derivatives of that config read with
#     the docs search tool). The official WhisperEncoder computes a 128-bin log-mel of 3000 frames, so
#     num_mel_bins and max_source_positions stay real in the tiny build.
WHISPER_FULL = dict(
    vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20,
    encoder_ffn_dim=5120, decoder_layers=32, decoder_attention_heads=20, decoder_ffn_dim=5120,
    max_source_positions=1500, max_target_positions=448, activation_function="gelu", dropout=0.0,
    attention_dropout=0.0, activation_dropout=0.0, init_std=0.02, scale_embedding=False,
    pad_token_id=50256, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258,
)  # (begin_suppress_tokens [220, 50257] is a generation setting: left out of the model config)
WHISPER_TINY = dict(WHISPER_FULL, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                    decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64)

# --- GLM-4-Voice tokenizer: the hub's config.json of THUDM/glm-4-voice-tokenizer (revision 36e7761, read with
#     the docs search tool): WhisperVQEncoder, d_model 1280, 32 encoder layers of 20 heads and FFN 5120, 128
#     mel bins, 1500 source positions, encoder_causal_convolution true, encoder_causal_attention false,
#     pooling avg / kernel 4 at position 16, quantize_causal_encoder false, quantize_causal_block_size 200,
#     quantize_commit_coefficient 0.25, quantize_ema_decay 0.99. The excerpt stops before the keys after
#     "quantize_encoder_"; those are inferred and checked against the published model.safetensors size
#     (1.46 GB, the hub's file list): quantize_encoder_only true and quantize_position 16 (16 layers kept),
#     quantize_vocab_size 16384 (= kimia_audio_output_vocab 16896 - 512 audio specials; 12.5 Hz codes), in
#     fp32: 343,599,360 parameters + 20,987,904 EMA buffer values = 1.458 GB. preprocessor_config.json: the
#     same repo's (WhisperFeatureExtractor, 128 features, hop 160, n_fft 400, 30 s chunks, 16 kHz).
GLM4_FULL = dict(
    vocab_size=51866, num_mel_bins=128, d_model=1280, encoder_layers=32, encoder_attention_heads=20,
    encoder_ffn_dim=5120, decoder_layers=32, decoder_attention_heads=20, decoder_ffn_dim=5120,
    max_source_positions=1500, max_target_positions=448, activation_function="gelu", dropout=0.0,
    attention_dropout=0.0, activation_dropout=0.0, init_std=0.02, scale_embedding=False,
    pad_token_id=50256, bos_token_id=50257, eos_token_id=50257, decoder_start_token_id=50258,
    apply_spec_augment=False, classifier_proj_size=256,
    encoder_causal_attention=False, encoder_causal_convolution=True, pooling_kernel_size=4,
    pooling_position=16, pooling_type="avg", quantize_causal_block_size=200, quantize_causal_encoder=False,
    quantize_commit_coefficient=0.25, quantize_ema_decay=0.99, quantize_encoder_only=True, quantize_position=16,
    quantize_vocab_size=16384, torch_dtype="float32",
)
GLM4_TINY = dict(GLM4_FULL, d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                 decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64, pooling_position=2,
                 quantize_position=2)
FEATURE_EXTRACTOR = {
    "chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
    "hop_length": 160, "n_fft": 400, "n_samples": 480000, "nb_max_frames": 3000, "padding_side": "right",
    "padding_value": 0.0, "processor_class": "WhisperProcessor", "return_attention_mask": False,
    "sampling_rate": 16000,
}

EXPECTED_FULL = {"lm": 9_766_334_464, "whisper_encoder": 636_968_960,
                 "glm4_params": 343_599_360, "glm4_buffers": 20_987_904}
BASE_TOKENS = 151643
SAMPLE_PROMPTS = ("请将语音内容转录为文字。", "请把这段语音转录成文本。")


# ---------------------------------------------------------------------------------------------------
# tiktoken.model: the test bed's BPE ranks
# ---------------------------------------------------------------------------------------------------


def bpe_ranks(texts: list[str]) -> list[bytes]:
    """151,643 byte strings in rank order: single bytes, then every prefix and the whole UTF-8 form of each
    CJK character, CJK/full-width punctuation, Latin-1 letter and character of ``texts``, then fillers
    that no merge can reach: pairs of CJK ideographs (the tokenizer's pre-tokeniser cuts every ideograph
    on its own, so no BPE chunk ever holds two), which a random model may still emit and which decode to
    readable text. Every character of the sample transcripts is then exactly one token."""
    chars = set()
    for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x3000, 0x303F), (0xFF00, 0xFFEF), (0x00A0, 0x00FF),
                   (0x2000, 0x206F)):
        chars.update(chr(c) for c in range(lo, hi + 1))
    for text in list(texts) + list(SAMPLE_PROMPTS):
        chars.update(c for c in text if ord(c) > 0x7F)
    encoded = sorted({c.encode("utf-8") for c in chars if not 0xD800 <= ord(c) <= 0xDFFF})
    ranks: list[bytes] = [bytes([b]) for b in range(256)]
    seen = set(ranks)
    for length in (2, 3, 4):  # shorter pieces first: BPE merges the lowest rank first
        for data in encoded:
            if len(data) >= length and data[:length] not in seen:
                seen.add(data[:length])
                ranks.append(data[:length])
    if len(ranks) > BASE_TOKENS:
        raise SystemExit(f"{len(ranks)} BPE pieces: more than {BASE_TOKENS}")
    index, span = 0, 0x9FFF - 0x4E00 + 1
    while len(ranks) < BASE_TOKENS:
        pair = (chr(0x4E00 + index // span) + chr(0x4E00 + index % span)).encode("utf-8")
        if pair not in seen:
            seen.add(pair)
            ranks.append(pair)
        index += 1
    return ranks


def write_tokenizer(folder: Path, texts: list[str]) -> dict:
    import base64

    ranks = bpe_ranks(texts)
    with open(folder / "tiktoken.model", "w", encoding="ascii") as fh:
        for rank, data in enumerate(ranks):
            fh.write(f"{base64.b64encode(data).decode()} {rank}\n")
    shutil.copyfile(HERE / "tokenization_kimia.py", folder / "tokenization_kimia.py")
    sys.path.insert(0, str(HERE))
    from tokenization_kimia import special_token_names

    names = special_token_names()
    specials = {"bos_token": "[BOS]", "eos_token": "[EOS]", "unk_token": names[-2], "pad_token": names[-1]}
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "auto_map": {"AutoTokenizer": ["tokenization_kimia.KimiaTestbedTokenizer", None]},
        "tokenizer_class": "KimiaTestbedTokenizer",
        "model_max_length": 8192,
        "clean_up_tokenization_spaces": False,
        **specials,
    }, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
    return {"bpe_ranks": len(ranks), "special_tokens": len(names)}


def check_tokenizer(folder: Path, texts: list[str]) -> dict:
    """Load it the official way and check what the official code relies on."""
    from transformers import AutoTokenizer

    from kimia_infer.utils.special_tokens import instantiate_extra_tokens

    tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    extra = instantiate_extra_tokens(tok)
    assert extra.media_begin == 151661 and extra.media_end == 151663, extra
    assert extra.msg_end == 151645 and extra.kimia_text_blank == 151666, extra
    assert extra.kimia_user_msg_start == 151670 and extra.kimia_assistant_msg_start == 151671, extra
    assert extra.pad == 152063 and tok.vocab_size == 152064, (extra.pad, tok.vocab_size)
    worst = 0
    for text in list(texts) + list(SAMPLE_PROMPTS):
        ids = tok.encode(text, bos=False, eos=False)
        assert all(0 <= i < BASE_TOKENS for i in ids), text
        assert tok.decode(ids) == text, (text, tok.decode(ids))
        cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
        worst = max(worst, len(ids) - len(text))
        assert len(ids) >= cjk
    return {"texts_checked": len(texts) + len(SAMPLE_PROMPTS), "extra_tokens": vars(extra),
            "tokens_beyond_characters": worst}


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------


def cheap_init_(model, std: float) -> None:
    """normal(0, std) for matrices and embeddings, zero biases, ones for norm scales: what the models'
    own _init_weights would roughly give, in one pass on the device (their constructors were skipped)."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() == 1:
                param.fill_(1.0)
            else:
                param.normal_(0.0, std)


def build(cls, config, device, dtype, std: float = 0.02):
    """``cls(config)`` on ``device`` in ``dtype`` with the weight initialisation skipped, then cheap_init_."""
    import torch
    from transformers.modeling_utils import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), no_init_weights():
            model = cls(config)
    finally:
        torch.set_default_dtype(previous)
    cheap_init_(model, std)
    return model.eval()


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def count_only(full: bool) -> int:
    """The three models on the meta device: their parameter counts against the published ones."""
    import torch
    from transformers import WhisperConfig

    from finetune_codes.configuration_moonshot_kimia import KimiAudioConfig
    from finetune_codes.modeling_kimia import MoonshotKimiaForCausalLM
    from kimia_infer.models.tokenizer.glm4.speech_tokenizer.configuration_whisper import WhisperVQConfig
    from kimia_infer.models.tokenizer.glm4.speech_tokenizer.modeling_whisper import WhisperVQEncoder
    from kimia_infer.models.tokenizer.whisper_Lv3.modeling_whisper import WhisperModel

    lm = build(MoonshotKimiaForCausalLM, KimiAudioConfig(**(LM_FULL if full else LM_TINY)), "meta", torch.bfloat16)
    whisper = build(WhisperModel, WhisperConfig(**(WHISPER_FULL if full else WHISPER_TINY)), "meta", torch.bfloat16)
    vq = build(WhisperVQEncoder, WhisperVQConfig(**(GLM4_FULL if full else GLM4_TINY)), "meta", torch.float32)
    counts = {"lm": n_params(lm), "whisper_encoder": n_params(whisper.encoder), "whisper": n_params(whisper),
              "glm4_params": n_params(vq), "glm4_buffers": sum(b.numel() for _, b in vq.named_buffers()),
              "kimi_audio_model": n_params(lm) + n_params(whisper.encoder)}
    for key, value in counts.items():
        want = EXPECTED_FULL.get(key) if full else None
        print(f"{key:18} {value:>15,}" + ("" if want is None else f"  expected {want:,}: "
                                            + ("ok" if want == value else "MISMATCH")), flush=True)
    bad = [k for k, v in EXPECTED_FULL.items() if full and counts[k] != v]
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("full", "tiny"), required=True)
    parser.add_argument("--checkout", required=True, help="the official Kimi-Audio checkout (its classes are used)")
    parser.add_argument("--out", required=True, help="folder for Kimi-Audio-7B/ and glm-4-voice-tokenizer/")
    parser.add_argument("--base-dir", help="where Kimi-Audio-7B/ goes (default OUT/Kimi-Audio-7B)")
    parser.add_argument("--glm4-dir", help="where glm-4-voice-tokenizer/ goes (default OUT/glm-4-voice-tokenizer)")
    parser.add_argument("--texts", action="append", default=[],
                        help="a file of transcripts (one per line, or a CSV: last column) whose characters must encode")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu", "meta"), default="auto",
                        help="meta: build on the meta device and check the parameter counts only (no memory, no files)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shard-size", default="5GB")
    args = parser.parse_args(argv)

    started = time.time()
    checkout = Path(args.checkout).resolve()
    sys.path.insert(0, str(checkout))
    import torch

    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if args.device == "meta":
        return count_only(args.size == "full")
    dtype = torch.bfloat16
    torch.manual_seed(args.seed)
    from transformers import WhisperConfig, WhisperFeatureExtractor

    from finetune_codes.configuration_moonshot_kimia import KimiAudioConfig
    from finetune_codes.modeling_kimia import MoonshotKimiaForCausalLM
    from kimia_infer.models.tokenizer.glm4.speech_tokenizer.configuration_whisper import WhisperVQConfig
    from kimia_infer.models.tokenizer.glm4.speech_tokenizer.modeling_whisper import WhisperVQEncoder
    from kimia_infer.models.tokenizer.whisper_Lv3.modeling_whisper import WhisperModel

    full = args.size == "full"
    out = Path(args.out)
    base = Path(args.base_dir) if args.base_dir else out / "Kimi-Audio-7B"
    glm = Path(args.glm4_dir) if args.glm4_dir else out / "glm-4-voice-tokenizer"
    for folder in (out, base, glm):
        folder.mkdir(parents=True, exist_ok=True)
    texts: list[str] = []
    for path in args.texts:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            texts.append(line.rsplit(",", 1)[-1].strip() if path.endswith(".csv") else line.strip())
    report: dict = {"size": args.size, "device": device, "dtype": str(dtype), "checkout": str(checkout),
                    "base_model": str(base), "glm4_tokenizer": str(glm), "seconds": {}}
    say = lambda msg: print(f"[build {time.time() - started:6.1f}s] {msg}", flush=True)  # noqa: E731
    say(f"size {args.size} on {device} in bf16 -> {base}, {glm}")

    # the LM
    t0 = time.time()
    lm_config = KimiAudioConfig(**(LM_FULL if full else LM_TINY))
    lm_config.torch_dtype = "bfloat16"
    lm = build(MoonshotKimiaForCausalLM, lm_config, device, dtype, lm_config.initializer_range)
    report["lm_params"] = n_params(lm)
    say(f"LM MoonshotKimiaForCausalLM: {report['lm_params']:,} parameters built in {time.time() - t0:.1f} s")
    if full and report["lm_params"] != EXPECTED_FULL["lm"]:
        raise SystemExit(f"LM has {report['lm_params']:,} parameters, expected {EXPECTED_FULL['lm']:,}")
    t0 = time.time()
    lm.save_pretrained(str(base), safe_serialization=True, max_shard_size=args.shard_size)
    del lm
    if device == "cuda":
        torch.cuda.empty_cache()
    report["seconds"]["lm_save"] = round(time.time() - t0, 1)
    config = json.loads((base / "config.json").read_text())
    config.update({
        "architectures": ["MoonshotKimiaForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_moonshot_kimia.KimiAudioConfig",
                     "AutoModel": "modeling_moonshot_kimia.MoonshotKimiaModel",
                     "AutoModelForCausalLM": "modeling_moonshot_kimia.MoonshotKimiaForCausalLM"},
        "model_type": "moonshot_kimia", "torch_dtype": "bfloat16",
    })
    (base / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # the hub's file names, as the official export writes them (copied at run time, never committed)
    shutil.copyfile(checkout / "finetune_codes" / "configuration_moonshot_kimia.py",
                    base / "configuration_moonshot_kimia.py")
    shutil.copyfile(checkout / "finetune_codes" / "modeling_kimia.py", base / "modeling_moonshot_kimia.py")
    say(f"LM saved in {report['seconds']['lm_save']} s: {folder_bytes(base) / 1e9:.2f} GB")

    # the Whisper-large-v3 folder inside the base model (kimia_infer's WhisperModel: encoder + decoder)
    t0 = time.time()
    whisper_dir = base / "whisper-large-v3"
    whisper = build(WhisperModel, WhisperConfig(**(WHISPER_FULL if full else WHISPER_TINY)), device, dtype)
    report["whisper_params"] = n_params(whisper)
    report["whisper_encoder_params"] = n_params(whisper.encoder)
    if full and report["whisper_encoder_params"] != EXPECTED_FULL["whisper_encoder"]:
        raise SystemExit(f"Whisper encoder has {report['whisper_encoder_params']:,} parameters, "
                         f"expected {EXPECTED_FULL['whisper_encoder']:,}")
    whisper.save_pretrained(str(whisper_dir), safe_serialization=True, max_shard_size=args.shard_size)
    del whisper
    (whisper_dir / "preprocessor_config.json").write_text(json.dumps(FEATURE_EXTRACTOR, indent=2) + "\n")
    report["seconds"]["whisper"] = round(time.time() - t0, 1)
    say(f"whisper-large-v3 WhisperModel: {report['whisper_params']:,} parameters (encoder "
        f"{report['whisper_encoder_params']:,}), {folder_bytes(whisper_dir) / 1e9:.2f} GB, "
        f"{report['seconds']['whisper']} s")

    # the tokenizer
    t0 = time.time()
    report["tokenizer"] = write_tokenizer(base, texts)
    report["tokenizer"].update(check_tokenizer(base, texts))
    report["seconds"]["tokenizer"] = round(time.time() - t0, 1)
    say(f"tokenizer: {report['tokenizer']['bpe_ranks']:,} BPE ranks + {report['tokenizer']['special_tokens']} "
        f"special tokens; {report['tokenizer']['texts_checked']} texts encode and decode back")

    # the GLM-4-Voice speech tokenizer, in fp32 as published
    t0 = time.time()
    glm_config = WhisperVQConfig(**(GLM4_FULL if full else GLM4_TINY))
    glm_config.architectures = ["WhisperVQEncoder"]
    vq = build(WhisperVQEncoder, glm_config, device, torch.float32)
    with torch.no_grad():
        if getattr(vq, "ema_weight", None) is not None:  # the EMA copy follows the (re-initialised) codebook
            vq.ema_weight.copy_(vq.codebook.weight.float())
        if vq.embed_positions2 is not None:
            vq.embed_positions2.weight.copy_(vq.embed_positions.weight[: vq.embed_positions2.weight.shape[0]])
    report["glm4_params"] = n_params(vq)
    report["glm4_buffers"] = sum(b.numel() for _, b in vq.named_buffers())
    if full and (report["glm4_params"], report["glm4_buffers"]) != (EXPECTED_FULL["glm4_params"],
                                                                      EXPECTED_FULL["glm4_buffers"]):
        raise SystemExit(f"GLM-4 tokenizer: {report['glm4_params']:,} parameters + {report['glm4_buffers']:,} "
                         "buffer values, not the published checkpoint's size")
    vq.save_pretrained(str(glm), safe_serialization=True)
    del vq
    (glm / "preprocessor_config.json").write_text(json.dumps(FEATURE_EXTRACTOR, indent=2) + "\n")
    WhisperFeatureExtractor.from_pretrained(str(glm))  # the official Glm4Tokenizer loads it so
    report["seconds"]["glm4"] = round(time.time() - t0, 1)
    say(f"glm-4-voice-tokenizer WhisperVQEncoder: {report['glm4_params']:,} parameters + "
        f"{report['glm4_buffers']:,} buffer values, {folder_bytes(glm) / 1e9:.2f} GB, {report['seconds']['glm4']} s")

    report["bytes"] = {"base_model": folder_bytes(base), "whisper": folder_bytes(whisper_dir),
                       "glm4_tokenizer": folder_bytes(glm)}
    report["seconds"]["total"] = round(time.time() - started, 1)
    (out / "build_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    say(f"done in {report['seconds']['total']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
