// `window.seganyState`: what the page shows, as live getters (read at any moment, never out of
// date), for tests and for curious people with a console:
//   imageId, imageLoaded, candidates (0 or 3), chosen (index), maskArea / maskRle (the mask
//   shown), points, box, hoverArea / hoverRle (the hover preview), predictions (answers
//   shown), predicting, annotations (-1 while loading), selectedAnnotation, suggestions,
//   autoRunning, categoryId, view ({scale, tx, ty}: view px = image px * scale + t),
//   errors (messages shown), requests (in flight), user.

/**
 * @param {object} app the page's parts: annotator, annotations, suggestions, categories,
 *   viewer, messages, api, and functions current(), imageLoaded(), user()
 */
export function publishState(app) {
  window.seganyState = {
    get imageId() {
      return app.current() ? app.current().id : null;
    },
    get imageLoaded() {
      return app.imageLoaded();
    },
    get candidates() {
      return app.annotator.candidates.length;
    },
    get chosen() {
      return app.annotator.chosen;
    },
    get maskArea() {
      return app.annotator.chosenMask ? app.annotator.chosenMask.area : 0;
    },
    get maskRle() {
      return app.annotator.chosenMask ? app.annotator.chosenMask.rle : null;
    },
    get points() {
      return app.annotator.history.current.points.length;
    },
    get box() {
      return app.annotator.history.current.box;
    },
    get hoverArea() {
      return app.annotator.hover ? app.annotator.hover.area : 0;
    },
    get hoverRle() {
      return app.annotator.hover ? app.annotator.hover.rle : null;
    },
    get predictions() {
      return app.annotator.predictions;
    },
    get predicting() {
      return app.annotator.busy;
    },
    get annotations() {
      return app.annotations.loaded ? app.annotations.annotations.length : -1;
    },
    get selectedAnnotation() {
      return app.annotations.selectedId;
    },
    get suggestions() {
      return app.suggestions.masks.length;
    },
    get autoRunning() {
      return app.suggestions.running;
    },
    get categoryId() {
      return app.categories.currentId;
    },
    get view() {
      return { ...app.viewer.view };
    },
    get errors() {
      return app.messages.errors;
    },
    get requests() {
      return app.api.inFlight;
    },
    get user() {
      return app.user();
    },
  };
}
