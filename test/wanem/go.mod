module cloudnet/wanem

go 1.26
