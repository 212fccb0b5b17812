namespace moestream::io {}  // placeholder until the GGUF reader lands
