package score

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/shortllm/shortllm/internal/atomicfile"
	"github.com/shortllm/shortllm/internal/inputfile"
)

// WriteResults writes one result as a JSON object, several as a list, through a temp file and
// a rename so a reader never sees half a file.
func WriteResults(path string, results []*Result) error {
	data, err := MarshalResults(results)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, data)
}

// MarshalResults is the document WriteResults writes: an object for one result, else a list.
func MarshalResults(results []*Result) ([]byte, error) {
	var v any = results
	if len(results) == 1 {
		v = results[0]
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// ReadResults loads what WriteResults wrote (an object or a list of them).
func ReadResults(path string) ([]*Result, error) {
	data, err := inputfile.Read(path, inputfile.ResultLimit)
	if err != nil {
		return nil, fmt.Errorf("scores %s: %w", path, err)
	}
	data = bytes.TrimSpace(data)
	var out []*Result
	if len(data) > 0 && data[0] == '[' {
		err = json.Unmarshal(data, &out)
	} else {
		var r Result
		err = json.Unmarshal(data, &r)
		out = []*Result{&r}
	}
	if err != nil {
		return nil, fmt.Errorf("scores %s: %w", path, err)
	}
	for i, r := range out {
		if r == nil || r.Criterion == "" || len(r.Scores) != r.NumLayers {
			return nil, fmt.Errorf("scores %s: result %d is not a score document (criterion, num_layers, scores)", path, i)
		}
	}
	return out, nil
}
