// Stands in for npm:postgres's src/connection.js in the test of the write guard: the same function name and
// path shape, and the same fault (a write on a socket the close set to null).
export function nextWrite(socket) {
  return socket.write(new Uint8Array(1));
}
