get /big.bin /dev/null
