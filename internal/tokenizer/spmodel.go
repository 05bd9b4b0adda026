package tokenizer

import (
	"errors"
	"fmt"
	"math"

	"github.com/shortllm/shortllm/internal/inputfile"
)

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spNormal      = 1
	spUnknown     = 2
	spControl     = 3
	spUserDefined = 4
	spUnused      = 5
	spByte        = 6
)

// SentencePiece model types (TrainerSpec.ModelType).
const (
	spModelUnigram = 1
	spModelBPE     = 2
)

type spPiece struct {
	piece string
	score float32
	typ   int
}

// spModel is the subset of ModelProto that encoding needs.
type spModel struct {
	pieces       []spPiece
	modelType    int
	byteFallback bool
	unkID        int
	bosID        int
	eosID        int
	padID        int
	normName     string
	addDummy     bool
	removeExtra  bool
	escapeSpaces bool
}

func parseSPModel(buf []byte) (*spModel, error) {
	m := &spModel{modelType: spModelUnigram, unkID: 0, bosID: 1, eosID: 2, padID: -1,
		addDummy: true, removeExtra: true, escapeSpaces: true}
	r := &pbReader{buf: buf}
	for !r.done() {
		num, typ, err := r.field()
		if err != nil {
			return nil, err
		}
		switch num {
		case 1, 2, 3:
			if err := expect(num, typ, wireBytes); err != nil {
				return nil, err
			}
			b, err := r.bytes()
			if err != nil {
				return nil, err
			}
			err = parseSPSection(m, num, b)
			if err != nil {
				return nil, err
			}
		default:
			if err := r.skip(typ); err != nil {
				return nil, err
			}
		}
	}
	return m, validateSPModel(m)
}

func parseSPSection(m *spModel, num int, b []byte) error {
	switch num {
	case 1:
		p, err := parseSPPiece(b)
		if err != nil {
			return fmt.Errorf("piece %d: %w", len(m.pieces), err)
		}
		m.pieces = append(m.pieces, p)
		return nil
	case 2:
		return wrapErr("trainer_spec", parseTrainerSpec(m, b))
	}
	return wrapErr("normalizer_spec", parseNormalizerSpec(m, b))
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func parseSPPiece(b []byte) (spPiece, error) {
	p := spPiece{typ: spNormal}
	r := &pbReader{buf: b}
	for !r.done() {
		num, typ, err := r.field()
		if err != nil {
			return p, err
		}
		switch {
		case num == 1 && typ == wireBytes:
			s, err := r.bytes()
			if err != nil {
				return p, err
			}
			p.piece = string(s)
		case num == 2 && typ == wireFixed32:
			v, err := r.fixed32()
			if err != nil {
				return p, err
			}
			p.score = math.Float32frombits(v)
		case num == 3 && typ == wireVarint:
			v, err := r.varint()
			if err != nil {
				return p, err
			}
			p.typ = int(v)
		default:
			if err := r.skip(typ); err != nil {
				return p, err
			}
		}
	}
	return p, nil
}

// varintFields reads a message whose interesting fields are all varints, calling set
// for each; other fields are skipped.
func varintFields(b []byte, set func(num int, v uint64)) error {
	r := &pbReader{buf: b}
	for !r.done() {
		num, typ, err := r.field()
		if err != nil {
			return err
		}
		if typ != wireVarint {
			if err := r.skip(typ); err != nil {
				return err
			}
			continue
		}
		v, err := r.varint()
		if err != nil {
			return err
		}
		set(num, v)
	}
	return nil
}

func parseTrainerSpec(m *spModel, b []byte) error {
	return varintFields(b, func(num int, v uint64) {
		switch num {
		case 3:
			m.modelType = int(v)
		case 35:
			m.byteFallback = v != 0
		case 40:
			m.unkID = int(int32(v))
		case 41:
			m.bosID = int(int32(v))
		case 42:
			m.eosID = int(int32(v))
		case 43:
			m.padID = int(int32(v))
		}
	})
}

func parseNormalizerSpec(m *spModel, b []byte) error {
	if err := varintFields(b, func(num int, v uint64) {
		switch num {
		case 3:
			m.addDummy = v != 0
		case 4:
			m.removeExtra = v != 0
		case 5:
			m.escapeSpaces = v != 0
		}
	}); err != nil {
		return err
	}
	r := &pbReader{buf: b}
	for !r.done() {
		num, typ, err := r.field()
		if err != nil {
			return err
		}
		if num == 1 && typ == wireBytes {
			s, err := r.bytes()
			if err != nil {
				return err
			}
			m.normName = string(s)
			continue
		}
		if err := r.skip(typ); err != nil {
			return err
		}
	}
	return nil
}

func validateSPModel(m *spModel) error {
	if len(m.pieces) == 0 {
		return errors.New("no pieces")
	}
	if m.modelType != spModelBPE {
		return fmt.Errorf("unsupported model type %d (only BPE=2 is implemented)", m.modelType)
	}
	switch m.normName {
	case "", "identity":
	default:
		return fmt.Errorf("unsupported normalization rule %q", m.normName)
	}
	for _, id := range []*int{&m.unkID, &m.bosID, &m.eosID, &m.padID} {
		if *id >= len(m.pieces) || *id < -1 {
			*id = -1
		}
	}
	if m.unkID < 0 {
		return errors.New("no unknown piece")
	}
	return nil
}

// LoadSentencePiece reads a SentencePiece BPE tokenizer.model. Special token ids come
// from the model's trainer spec; Load also applies a model directory's config files.
func LoadSentencePiece(path string) (*Tokenizer, error) {
	buf, err := inputfile.Read(path, inputfile.TokenizerLimit)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	m, err := parseSPModel(buf)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: parsing SentencePiece model: %w", path, err)
	}
	return newSPTokenizer(m), nil
}
