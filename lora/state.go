package lora

import (
	"encoding/binary"
	"fmt"
)

// DropoutState is the position of every module's dropout stream, for
// training checkpoints: restoring it makes a resumed run draw the same
// masks as an uninterrupted one.
type DropoutState struct{ a *Adapters }

// DropoutState returns a handle on the adapters' dropout streams.
func (a *Adapters) DropoutState() DropoutState { return DropoutState{a} }

// MarshalBinary concatenates the modules' PCG states, each prefixed by its
// length.
func (d DropoutState) MarshalBinary() ([]byte, error) {
	var out []byte
	for _, md := range d.a.Modules {
		if md.pcg == nil {
			return nil, fmt.Errorf("lora: module %s has no dropout stream", md.Name)
		}
		b, err := md.pcg.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

// UnmarshalBinary restores what MarshalBinary returned, for adapters with
// the same modules.
func (d DropoutState) UnmarshalBinary(b []byte) error {
	for _, md := range d.a.Modules {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return fmt.Errorf("lora: dropout state too short for module %s", md.Name)
		}
		if md.pcg == nil {
			return fmt.Errorf("lora: module %s has no dropout stream", md.Name)
		}
		if err := md.pcg.UnmarshalBinary(b[k : k+int(n)]); err != nil {
			return fmt.Errorf("lora: module %s dropout state: %w", md.Name, err)
		}
		b = b[k+int(n):]
	}
	if len(b) != 0 {
		return fmt.Errorf("lora: dropout state has %d bytes for more modules than the %d here", len(b), len(d.a.Modules))
	}
	return nil
}
