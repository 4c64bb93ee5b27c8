"""Drives the official OpenAI and Anthropic Python SDKs, unchanged, against the gateway.

Usage: check_sdks.py BASE_URL API_KEY. Prints one JSON object with what the clients saw and
exits non-zero on any failure.
"""
import json
import sys

import anthropic
import openai


def main() -> None:
    base, key = sys.argv[1], sys.argv[2]
    out = {}

    oa = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    r = oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    out["openai"] = {"text": r.choices[0].message.content, "prompt_tokens": r.usage.prompt_tokens,
                     "completion_tokens": r.usage.completion_tokens}
    chunks = list(oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                             stream=True, stream_options={"include_usage": True}))
    usage = [c.usage for c in chunks if c.usage is not None]
    out["openai_stream"] = {"chunks": len(chunks), "text": "".join(c.choices[0].delta.content or "" for c in chunks if c.choices),
                            "completion_tokens": usage[-1].completion_tokens if usage else None}
    try:
        oa.chat.completions.create(model="no-such-model", messages=[])
        out["openai_error"] = None
    except openai.NotFoundError as e:
        out["openai_error"] = {"status": e.status_code, "message": e.message}

    an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
    m = an.messages.create(model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    out["anthropic"] = {"text": m.content[0].text, "input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens}
    with an.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        final = s.get_final_message()
    out["anthropic_stream"] = {"text": "".join(b.text for b in final.content if b.type == "text"),
                               "input_tokens": final.usage.input_tokens, "output_tokens": final.usage.output_tokens}
    try:
        anthropic.Anthropic(base_url=base, api_key="XJP_wrong", max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        out["anthropic_error"] = None
    except anthropic.AuthenticationError as e:
        out["anthropic_error"] = {"status": e.status_code, "type": e.body["error"]["type"]}

    print(json.dumps(out))


if __name__ == "__main__":
    main()
