package train

import (
	"github.com/shoggo/shoggo/lora"
	"github.com/shoggo/shoggo/model"
)

// LoRA makes the adapters a applied to m the Trainable, and wires them
// into m: gradient checkpointing replays their dropout masks
// (m.RecomputeHook), evaluation turns dropout off (SetTraining), and
// checkpoints save the dropout streams. This is the one place the LoRA
// wiring is written.
func LoRA(m *model.Transformer, a *lora.Adapters) Trainable {
	m.RecomputeHook = a.ReplayMasks
	return Trainable{Params: a.Params(), Grads: a.Grads(), ZeroGrad: a.ZeroGrad, BE: m.BE, GradArena: a.GradArena, Save: a.Save,
		SetTraining: a.SetTraining, State: map[string]Stateful{"lora_dropout": a.DropoutState()}}
}
