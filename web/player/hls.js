// The entry of /static/vendor/hls.js: hls.js as an ES module (default export Hls).
// The light build: the hub's playlists carry muxed H.264/AAC renditions, with no alternate audio,
// subtitles or DRM, so the full build's extra ~220 KB would never run.
// web/static/player.js loads it with import('./vendor/hls.js') only when a page plays HLS
// and the browser has no native HLS.
import Hls from 'hls.js/light';
export default Hls;
