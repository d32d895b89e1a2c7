// Chooses what a <video> plays.
//
// Order: HLS (hls_url) where the browser plays it natively, else the original
// file (original_url, served with Range so seeking works).
//
// hls.js seam: a later issue adds /static/vendor/hls.js. Load it here, inside
// attachSource, only when v.hls_url is set and native HLS is missing:
//     const { default: Hls } = await import('./vendor/hls.js');
//     if (Hls.isSupported()) { const hls = new Hls(); hls.loadSource(v.hls_url);
//       hls.attachMedia(video); return { kind: 'hls.js', destroy: () => hls.destroy() }; }
// The watch page only uses attachSource/the returned destroy(), so nothing else changes.

export const HLS_TYPE = 'application/vnd.apple.mpegurl';

// Returns {kind: 'hls-native'|'original', url, destroy()}, or null when there is nothing to play.
export async function attachSource(video, v, { allowHls = true } = {}) {
  if (allowHls && v.hls_url && video.canPlayType(HLS_TYPE)) {
    video.src = v.hls_url;
    return { kind: 'hls-native', url: v.hls_url, destroy: () => clear(video) };
  }
  if (v.original_url) {
    video.src = v.original_url;
    return { kind: 'original', url: v.original_url, destroy: () => clear(video) };
  }
  return null;
}

function clear(video) {
  video.removeAttribute('src');
  video.load();
}
