module github.com/shoggo/shoggo

go 1.26
