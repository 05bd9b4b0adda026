package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkOneLineError asserts a load error exists, names the file, says what is wrong and
// fits on one line.
func checkOneLineError(t *testing.T, err error, path, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	msg := err.Error()
	if !strings.Contains(msg, path) || !strings.Contains(msg, what) || strings.Contains(msg, "\n") {
		t.Errorf("error %q should be one line naming %s and saying %q", msg, path, what)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pbField encodes a length-delimited protobuf field.
func pbField(num int, data []byte) []byte {
	out := appendVarint(nil, uint64(num<<3|wireBytes))
	out = appendVarint(out, uint64(len(data)))
	return append(out, data...)
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// tinySPModel is a minimal valid BPE model: <unk>, <s>, </s>, "▁", "a", "▁a".
func tinySPModel() []byte { return tinySPModelOfType(spModelBPE) }

func tinySPModelOfType(typ byte) []byte {
	var m []byte
	for _, p := range []struct {
		s   string
		typ uint64
	}{{"<unk>", spUnknown}, {"<s>", spControl}, {"</s>", spControl}, {"▁", spNormal}, {"a", spNormal}, {"▁a", spNormal}} {
		piece := pbField(1, []byte(p.s))
		piece = append(piece, 2<<3|wireFixed32, 0, 0, 0x80, 0xbf) // score -1.0
		piece = append(piece, 3<<3|wireVarint, byte(p.typ))
		m = append(m, pbField(1, piece)...)
	}
	m = append(m, pbField(2, []byte{3 << 3, typ})...)
	return append(m, pbField(3, []byte{4 << 3, 0})...)
}

func TestTinySentencePiece(t *testing.T) {
	tok, err := LoadSentencePiece(writeFile(t, "tokenizer.model", tinySPModel()))
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("a ab", true)
	want := []int{1, 5, 5, 0} // "▁a" "▁a" then "b" is unknown
	if len(got) != len(want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Encode = %v, want %v", got, want)
		}
	}
}

func TestMalformedSentencePiece(t *testing.T) {
	good := tinySPModel()
	cases := map[string][]byte{
		"truncated protobuf":                  good[:len(good)-3],
		"exceeds":                             {0x0a, 0xff, 0xff, 0x03, 0x01},
		"unsupported model type 1":            tinySPModelOfType(spModelUnigram),
		"no pieces":                           pbField(2, []byte{3 << 3, spModelBPE}),
		"unsupported wire type":               {9<<3 | 3},
		"invalid field number":                {0x00},
		"varint overflows":                    {9 << 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"unsupported normalization rule \"nf": append(append([]byte{}, good...), pbField(3, pbField(1, []byte("nfkc")))...),
	}
	for what, data := range cases {
		p := writeFile(t, "tokenizer.model", data)
		_, err := LoadSentencePiece(p)
		checkOneLineError(t, err, p, what)
	}
}

const tinyHF = `{"added_tokens":[{"id":0,"content":"<unk>","special":true}],
"normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
"model":{"type":"BPE","unk_token":"<unk>","vocab":{"<unk>":0,"a":1,"b":2,"ab":3},"merges":MERGES}}`

func TestHFMergeForms(t *testing.T) {
	for _, merges := range []string{`["a b"]`, `[["a","b"]]`} {
		p := writeFile(t, "tokenizer.json", []byte(strings.Replace(tinyHF, "MERGES", merges, 1)))
		tok, err := LoadHF(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode("abac", false); len(got) != 3 || got[0] != 3 || got[1] != 1 || got[2] != 0 {
			t.Errorf("merges %s: Encode = %v, want [3 1 0]", merges, got)
		}
	}
}

func TestMalformedHF(t *testing.T) {
	cases := map[string]string{
		"invalid JSON":                  `{"model": `,
		"no model":                      `{}`,
		"unsupported model type \"Unig": `{"model":{"type":"Unigram","vocab":[["a",0]]}}`,
		"missing from the vocab":        strings.Replace(tinyHF, "MERGES", `["a z"]`, 1),
		"not two tokens":                strings.Replace(tinyHF, "MERGES", `["a b c"]`, 1),
		"neither":                       strings.Replace(tinyHF, "MERGES", `[1]`, 1),
		"unsupported pre-tokenizer":     strings.Replace(strings.Replace(tinyHF, "MERGES", `[]`, 1), `"pre_tokenizer":null`, `"pre_tokenizer":{"type":"Nope"}`, 1),
		"unsupported normalizer":        strings.Replace(strings.Replace(tinyHF, "MERGES", `[]`, 1), `"normalizer":null`, `"normalizer":{"type":"Precompiled"}`, 1),
		"unsupported decoder":           strings.Replace(strings.Replace(tinyHF, "MERGES", `[]`, 1), `"decoder":null`, `"decoder":{"type":"WordPiece"}`, 1),
		"regex":                         strings.Replace(strings.Replace(tinyHF, "MERGES", `[]`, 1), `"pre_tokenizer":null`, `"pre_tokenizer":{"type":"Split","pattern":{"Regex":"("},"behavior":"Isolated"}`, 1),
		"unknown behavior":              strings.Replace(strings.Replace(tinyHF, "MERGES", `[]`, 1), `"pre_tokenizer":null`, `"pre_tokenizer":{"type":"Split","pattern":{"String":"x"},"behavior":"Sideways"}`, 1),
		"negative id":                   `{"model":{"type":"BPE","vocab":{"a":-1},"merges":[]}}`,
		"empty vocabulary":              `{"model":{"type":"BPE","vocab":{},"merges":[]}}`,
		"unk_token":                     `{"model":{"type":"BPE","unk_token":"<u>","vocab":{"a":0},"merges":[]}}`,
		"not in special_tokens":         strings.Replace(strings.Replace(tinyHF, "MERGES", `[]`, 1), `"post_processor":null`, `"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>"}}]}`, 1),
	}
	for what, data := range cases {
		p := writeFile(t, "tokenizer.json", []byte(data))
		_, err := LoadHF(p)
		checkOneLineError(t, err, p, what)
	}
}

func TestMalformedConfig(t *testing.T) {
	dir := t.TempDir()
	hf := strings.Replace(tinyHF, "MERGES", `[]`, 1)
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(hf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(cfg, []byte(`{"bos_token": 7`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	checkOneLineError(t, err, cfg, "invalid JSON")
	_, err = Load(t.TempDir())
	checkOneLineError(t, err, "", "no tokenizer.json or tokenizer.model")
}
