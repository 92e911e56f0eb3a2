module github.com/shoggo/shoggo

go 1.26.0

require (
	github.com/ebitengine/purego v0.11.3
	golang.org/x/image v0.48.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
