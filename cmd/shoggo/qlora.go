package main

import (
	"fmt"

	"github.com/shoggo/shoggo/backend"
	"github.com/shoggo/shoggo/model"
)

// qloraFactory quantizes each frozen linear to NF4.
func qloraFactory(be backend.Backend) (model.LinearFactory, error) {
	return nil, fmt.Errorf("--qlora: not available yet")
}
